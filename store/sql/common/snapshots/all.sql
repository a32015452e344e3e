-- Every snapshot (for `sessionctl audit verify`), by stream.
SELECT aggregate_type, aggregate_id, schema_version, last_sequence, state
FROM snapshots
ORDER BY aggregate_type, aggregate_id
