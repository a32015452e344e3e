-- Scheduler support (SPEC §1.4, §2).

-- Heartbeats are not events (SPEC §1.4): an agent's last-seen time lives in this plain
-- table, written by the heartbeat endpoint and read by the liveness check. Only the
-- ALIVE -> LOST transition it leads to is an event.
CREATE TABLE agent_heartbeats
(
    agent_id     TEXT PRIMARY KEY,
    last_seen_ms BIGINT NOT NULL
);

-- slot_releases: the durable process manager that gives slots back. One row per ledger
-- entry (agent, session), from SlotsAllocated until SlotsReleased; `due` turns 1 when
-- the session reaches TERMINATED or CANCELLED, and a worker then releases the slots.
CREATE TABLE rm_slot_holds
(
    generation BIGINT NOT NULL,
    agent_id   TEXT   NOT NULL,
    session_id TEXT   NOT NULL,
    due        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (generation, agent_id, session_id)
);
CREATE INDEX rm_slot_holds_session ON rm_slot_holds (generation, session_id);
-- the worker finds releases to do without scanning every held slot
CREATE INDEX rm_slot_holds_due ON rm_slot_holds (generation, due) WHERE due = 1;

-- Enqueue-time checks: an owner's PENDING sessions (max_pending_sessions) and an
-- owner's session names (name_conflict).
CREATE INDEX rm_pending_queue_owner ON rm_pending_queue (generation, owner);
CREATE INDEX rm_sessions_owner_name ON rm_sessions (generation, owner, name);
