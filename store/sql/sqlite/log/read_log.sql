-- The global log after position $2, in commit order: one writer at a time assigns
-- positions in commit order ($1, the transaction id, is 0 and unused). $3: most rows.
SELECT global_position, 0 AS transaction_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata, recorded_at
FROM events
WHERE global_position > $2
ORDER BY global_position
LIMIT $3
