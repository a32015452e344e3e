-- The event store: one append-only table for every aggregate type.
--
-- The first seven columns are the ones postgres-es reads and writes (its table layout,
-- so its repository and the plain CqrsFramework baseline work on this table unchanged).
-- The rest are ours (docs/adr/0001-event-store.md):
--   global_position  a total position in the global log, assigned at INSERT time. Because
--                    positions are assigned before commit, a transaction holding a lower
--                    position can commit after one holding a higher position.
--   recorded_at      when the store accepted the event (the domain's occurred_at is in
--                    the payload).
--   transaction_id   the writing transaction's id (xid8, never wraps). Readers of the
--                    global log order by (transaction_id, global_position) and only read
--                    rows of transactions older than the oldest running one
--                    (pg_snapshot_xmin), so no late-committing row is ever skipped.
CREATE TABLE events
(
    aggregate_type  text                         NOT NULL,
    aggregate_id    text                         NOT NULL,
    sequence        bigint CHECK (sequence >= 1) NOT NULL,
    event_type      text                         NOT NULL,
    event_version   text                         NOT NULL,
    payload         jsonb                        NOT NULL,
    metadata        jsonb                        NOT NULL,
    global_position bigint GENERATED ALWAYS AS IDENTITY,
    recorded_at     timestamptz                  NOT NULL DEFAULT now(),
    transaction_id  xid8                         NOT NULL DEFAULT pg_current_xact_id(),
    -- Optimistic concurrency: two writers deciding on the same version of a stream both
    -- try to insert the same sequence; exactly one wins.
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);

-- Positions are unique (consistency tokens refer to one event).
CREATE UNIQUE INDEX events_global_position ON events (global_position);

-- The global-log reader's order and range condition.
CREATE INDEX events_commit_order ON events (transaction_id, global_position);

-- Snapshots, in postgres-es's layout (used for long streams such as agents).
CREATE TABLE snapshots
(
    aggregate_type   text                                 NOT NULL,
    aggregate_id     text                                 NOT NULL,
    last_sequence    bigint CHECK (last_sequence >= 0)    NOT NULL,
    current_snapshot bigint CHECK (current_snapshot >= 0) NOT NULL,
    payload          jsonb                                NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id, last_sequence)
);
