-- Appends events of one or more streams in ONE statement (atomic): $1 is a JSON array
-- with one [aggregate_type, aggregate_id, sequence, event_type, event_version,
-- payload, metadata] array per event, inserted in array order. A sequence already
-- taken violates the unique key and appends nothing (optimistic concurrency). The
-- payload and metadata come as strings holding their JSON text, stored as given.
INSERT INTO events
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,
       value ->> 5, value ->> 6
FROM json_each($1)
ORDER BY key
RETURNING global_position, 0 AS transaction_id
