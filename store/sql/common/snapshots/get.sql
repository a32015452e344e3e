-- The snapshot of stream ($1 aggregate type, $2 id), if any: its shape's version, the
-- last sequence folded into it and the state as JSON.
SELECT schema_version, last_sequence, state
FROM snapshots
WHERE aggregate_type = $1 AND aggregate_id = $2
