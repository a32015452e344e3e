-- As on PostgreSQL: one snapshot row per stream (the state folded up to `last_sequence`,
-- as JSON, with its shape's version) replaces 0001's never-used table. A cache only: the
-- events are the data; `sessionctl store copy` does not copy snapshots.
DROP TABLE snapshots;

CREATE TABLE snapshots
(
    aggregate_type TEXT    NOT NULL,
    aggregate_id   TEXT    NOT NULL,
    schema_version INTEGER NOT NULL,
    last_sequence  INTEGER NOT NULL CHECK (last_sequence > 0),
    state          TEXT    NOT NULL,
    taken_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (aggregate_type, aggregate_id)
) STRICT;
