-- Writes exported events back exactly as they were: $1 is a JSON array with one
-- [global_position, aggregate_type, aggregate_id, sequence, event_type, event_version,
-- payload, metadata, recorded_at] array per event (payload and metadata as strings
-- holding their JSON text, stored as given).
INSERT INTO events (global_position, aggregate_type, aggregate_id, sequence, event_type,
                    event_version, payload, metadata, recorded_at)
SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,
       value ->> 6, value ->> 7, value ->> 8
FROM json_each($1)
ORDER BY key
