-- The global log after a cursor, in commit order (SPEC §3): rows after
-- ($1 transaction id as text, $2 global position) in (transaction_id, global_position)
-- order, only from transactions older than every transaction still running, so a row
-- that commits late is never passed over. $3: most rows.
-- ORDER BY names the table's columns: the output column `transaction_id` is the bigint
-- cast, and ordering by it would defeat the index `events_commit_order`.
SELECT global_position, transaction_id::text::bigint AS transaction_id, aggregate_type,
       aggregate_id, sequence, event_type, event_version, payload, metadata, recorded_at
FROM events
WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
  AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY events.transaction_id, events.global_position
LIMIT $3
