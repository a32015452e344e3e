-- The raw append baseline: one autocommit single-row INSERT of event sequence 1 into
-- `events` (no group commit, no load, no decision). $1 aggregate type, $2 aggregate id,
-- $3 event type, $4 event version, $5 payload, $6 metadata (jsonb on PostgreSQL, their
-- JSON text on SQLite).
INSERT INTO events
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
VALUES ($1, $2, 1, $3, $4, $5, $6)
