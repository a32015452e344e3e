-- Appends events of one or more streams in ONE statement (atomic, one round trip):
-- one row per element of the parallel arrays $1 aggregate types, $2 ids, $3 sequences,
-- $4 event types, $5 versions, $6 payloads, $7 metadata. A sequence already taken
-- violates the primary key and appends nothing (optimistic concurrency). Identity
-- values are drawn in the order of the UNNEST rows.
INSERT INTO events
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT *
FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
            $6::jsonb[], $7::jsonb[])
RETURNING global_position, transaction_id::text::bigint AS transaction_id
