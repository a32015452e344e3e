-- Stores the snapshot of stream ($1 type, $2 id): shape version $3, folded up to
-- sequence $4, state $5 (JSON). Replaces an older one, or one of another shape version;
-- never moves a snapshot of the same shape back to an earlier sequence (two loads of
-- the same stream may race to write theirs).
INSERT INTO snapshots (aggregate_type, aggregate_id, schema_version, last_sequence, state)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE
SET schema_version = excluded.schema_version,
    last_sequence  = excluded.last_sequence,
    state          = excluded.state,
    taken_at       = excluded.taken_at
WHERE snapshots.last_sequence <= excluded.last_sequence
   OR snapshots.schema_version <> excluded.schema_version
