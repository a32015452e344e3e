-- Delivery health per target (a subscription id, or 'callback'): open (pending or
-- failed), delivered and dead deliveries, the last delivery time, when the oldest open
-- one was written (unix ms), and the most recent failure's message. A scan of the
-- deliveries (never purged yet); the dashboard asks once per burst of session events.
SELECT target,
       COUNT(CASE WHEN status IN ('pending', 'failed') THEN 1 END) AS open,
       COUNT(CASE WHEN status = 'delivered' THEN 1 END) AS delivered,
       COUNT(CASE WHEN status = 'dead' THEN 1 END) AS dead,
       MAX(delivered_ms) AS last_delivered_ms,
       MIN(CASE WHEN status IN ('pending', 'failed') THEN created_ms END) AS oldest_open_ms,
       (SELECT d.last_error FROM webhook_deliveries d
        WHERE d.target = w.target AND d.last_error IS NOT NULL
        ORDER BY d.position DESC LIMIT 1) AS last_error
FROM webhook_deliveries w
GROUP BY target
ORDER BY target
