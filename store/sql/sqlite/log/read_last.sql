-- The last event of one stream ($1 aggregate type, $2 id), through the primary key.
SELECT global_position, 0 AS transaction_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata, recorded_at
FROM events
WHERE aggregate_type = $1 AND aggregate_id = $2
ORDER BY sequence DESC LIMIT 1
