-- The event store: one append-only table for every aggregate type.
--
-- aggregate_type .. metadata are the columns sqlite-es reads and writes, so its
-- repository works on this table unchanged. Ours (docs/adr/0001-event-store.md):
--   global_position  the rowid, AUTOINCREMENT so a position is never reused even after
--                    the newest row is deleted. SQLite has one writer at a time, so
--                    positions are assigned in commit order: the global log is simply
--                    "ORDER BY global_position".
--   recorded_at      when the store accepted the event, ISO-8601 UTC with milliseconds.
CREATE TABLE events
(
    global_position INTEGER PRIMARY KEY AUTOINCREMENT,
    aggregate_type  TEXT    NOT NULL,
    aggregate_id    TEXT    NOT NULL,
    sequence        INTEGER NOT NULL CHECK (sequence >= 1),
    event_type      TEXT    NOT NULL,
    event_version   TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    metadata        TEXT    NOT NULL,
    recorded_at     TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    -- Optimistic concurrency: exactly one writer of a given stream version wins.
    UNIQUE (aggregate_type, aggregate_id, sequence)
) STRICT;

-- Snapshots, in sqlite-es's layout.
CREATE TABLE snapshots
(
    aggregate_type   TEXT    NOT NULL,
    aggregate_id     TEXT    NOT NULL,
    last_sequence    INTEGER NOT NULL CHECK (last_sequence >= 0),
    current_snapshot INTEGER NOT NULL CHECK (current_snapshot >= 0),
    payload          TEXT    NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
) STRICT;
