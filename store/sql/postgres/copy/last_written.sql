-- The last row of the log in commit order, whether or not the commit-order reader can
-- return it yet (a transaction older than it, in any database of the server, may still
-- be running): a copy waits until the readable head reaches it.
SELECT transaction_id::text::bigint, global_position
FROM events
ORDER BY events.transaction_id DESC, events.global_position DESC
LIMIT 1
