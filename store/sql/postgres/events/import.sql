-- Writes exported events back exactly as they were (positions, streams, sequences,
-- types, versions, bodies, metadata, times): parallel arrays $1..$9 in column order.
INSERT INTO events (global_position, aggregate_type, aggregate_id, sequence, event_type,
                    event_version, payload, metadata, recorded_at)
OVERRIDING SYSTEM VALUE
SELECT *
FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[],
            $7::jsonb[], $8::jsonb[], $9::timestamptz[])
