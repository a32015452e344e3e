-- The outbox's backlog: open deliveries (pending or failed), dead ones, and when the
-- oldest open one was written (unix ms), through the status index.
SELECT
    (SELECT COUNT(*) FROM webhook_deliveries WHERE status IN ('pending', 'failed')) AS open,
    (SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'dead') AS dead,
    (SELECT MIN(created_ms) FROM webhook_deliveries WHERE status IN ('pending', 'failed')) AS oldest_open_ms
