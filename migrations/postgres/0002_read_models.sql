-- Read models and the projection engine's checkpoints (projections/).
--
-- Every read-model row carries the `generation` it belongs to. Readers read the live
-- generation named in the projection's checkpoint row; a rebuild fills generation g+1
-- while g keeps serving, then swaps by updating the checkpoint row (one short
-- transaction) and deletes generation g. No DDL runs at run time.
-- Times are ISO-8601 UTC text (portable across both backends); `*_ms` columns are
-- epoch milliseconds where the scheduler compares or orders by time.

-- One row per projection: the last applied event and the live generation. Advanced in
-- the same transaction as the read-model writes (exactly-once effect).
CREATE TABLE projection_checkpoints
(
    name           TEXT PRIMARY KEY,
    transaction_id BIGINT NOT NULL DEFAULT 0,
    position       BIGINT NOT NULL DEFAULT 0,
    generation     BIGINT NOT NULL DEFAULT 1,
    updated_at     TEXT   NOT NULL,
    last_error     TEXT,
    failures       BIGINT NOT NULL DEFAULT 0
);

-- sessions: the folded Session aggregate (doc, JSON) plus the columns lists filter on.
CREATE TABLE rm_sessions
(
    generation     BIGINT NOT NULL,
    id             TEXT   NOT NULL,
    owner          TEXT   NOT NULL,
    name           TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    scaling_group  TEXT   NOT NULL,
    session_type   TEXT   NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (generation, id)
) WITH (fillfactor = 70); -- room on each page for HOT updates of the same row
-- keyset pagination in enqueue order, and an owner's sessions. Only columns that never
-- change after enqueue are indexed, so a status change can be a HOT update (no index
-- writes); status filters are applied on top of these.
CREATE INDEX rm_sessions_order ON rm_sessions (generation, first_position);
CREATE INDEX rm_sessions_owner ON rm_sessions (generation, owner, first_position);

-- scaling_groups: the folded ScalingGroup aggregate.
CREATE TABLE rm_scaling_groups
(
    generation     BIGINT NOT NULL,
    id             TEXT   NOT NULL,
    is_active      BIGINT NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (generation, id)
);

-- agent_occupancy: the folded Agent aggregate (capacity, ledger, status).
CREATE TABLE rm_agent_occupancy
(
    generation     BIGINT NOT NULL,
    id             TEXT   NOT NULL,
    scaling_group  TEXT   NOT NULL,
    status         TEXT   NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (generation, id)
);
CREATE INDEX rm_agent_occupancy_group ON rm_agent_occupancy (generation, scaling_group);

-- pending_queue: PENDING sessions per scaling group, in scheduler order, with the
-- pending-timeout deadline. retries / last_try are written by the scheduler (not events).
CREATE TABLE rm_pending_queue
(
    generation       BIGINT NOT NULL,
    session_id       TEXT   NOT NULL,
    scaling_group    TEXT   NOT NULL,
    owner            TEXT   NOT NULL,
    session_type     TEXT   NOT NULL,
    priority         BIGINT NOT NULL,
    enqueue_position BIGINT NOT NULL,
    enqueued_at      TEXT   NOT NULL,
    enqueued_ms      BIGINT NOT NULL,
    deadline_ms      BIGINT,
    retries          BIGINT NOT NULL DEFAULT 0,
    last_try         TEXT,
    PRIMARY KEY (generation, session_id)
);
CREATE INDEX rm_pending_queue_order
    ON rm_pending_queue (generation, scaling_group, priority DESC, enqueue_position);
-- the sweeper finds expired sessions through this index: cost grows with the expired
-- ones, not with every pending one
CREATE INDEX rm_pending_queue_deadline
    ON rm_pending_queue (generation, deadline_ms) WHERE deadline_ms IS NOT NULL;

-- the pending queue's own copy of each group's pending_timeout (projections are
-- rebuilt independently, so it does not read another read model)
CREATE TABLE rm_pending_group_timeouts
(
    generation      BIGINT NOT NULL,
    scaling_group   TEXT   NOT NULL,
    pending_timeout BIGINT NOT NULL,
    PRIMARY KEY (generation, scaling_group)
);

-- audit_log: a flat timeline of every event.
CREATE TABLE rm_audit_log
(
    generation      BIGINT NOT NULL,
    global_position BIGINT NOT NULL,
    transaction_id  BIGINT NOT NULL,
    aggregate_type  TEXT   NOT NULL,
    aggregate_id    TEXT   NOT NULL,
    sequence        BIGINT NOT NULL,
    event_type      TEXT   NOT NULL,
    actor           TEXT   NOT NULL,
    occurred_at     TEXT,
    recorded_at     TEXT   NOT NULL,
    PRIMARY KEY (generation, global_position)
);
CREATE INDEX rm_audit_log_aggregate ON rm_audit_log (generation, aggregate_type, aggregate_id);

-- Wake projection runners in every replica after an append: one notification per
-- INSERT statement (PostgreSQL folds identical notifications of a transaction).
-- Runners also poll, so a lost notification only delays them.
CREATE FUNCTION sessiond_notify_events() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    PERFORM pg_notify('sessiond_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify
    AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION sessiond_notify_events();
