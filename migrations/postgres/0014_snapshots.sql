-- Snapshots of long streams (agents' streams grow with every allocation). The table of
-- 0001 (postgres-es's layout, keyed by sequence, no schema version) was never read or
-- written; it is replaced by one row per stream: the state folded up to `last_sequence`,
-- serialized as JSON, with the version of that serialized shape (`Decider::SNAPSHOT_VERSION`).
-- A snapshot is a cache: it is never the only copy of anything (the events are), so
-- `sessionctl store copy` does not copy it and deleting rows here loses nothing.
DROP TABLE snapshots;

CREATE TABLE snapshots
(
    aggregate_type text   NOT NULL,
    aggregate_id   text   NOT NULL,
    schema_version bigint NOT NULL,
    last_sequence  bigint NOT NULL CHECK (last_sequence > 0),
    state          text   NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (aggregate_type, aggregate_id)
);
