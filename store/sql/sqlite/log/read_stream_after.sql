-- The events of one stream ($1 aggregate type, $2 id) after sequence $3, in sequence
-- order (the part of a stream a snapshot does not hold).
SELECT global_position, 0 AS transaction_id, aggregate_type, aggregate_id, sequence,
       event_type, event_version, payload, metadata, recorded_at
FROM events
WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
ORDER BY sequence
