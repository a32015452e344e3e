-- The newest (transaction id, position) the commit-order reader can return now.
SELECT transaction_id::text::bigint, global_position
FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.transaction_id DESC, events.global_position DESC
LIMIT 1
