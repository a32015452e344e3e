-- The process agent (SPEC §9): abort notices, the agent's log tails, and why each
-- pending session waits.

-- sessions: the agent that must act on a session now (start it, or stop it until it
-- reports the kernel ended; '' = none), so an agent's assignments are one index lookup
-- (the column is computed from the folded session: `Session::agent_to_notify`). It
-- changes only when a session is scheduled and when its agent acknowledges a stop, so
-- most updates of a row stay HOT. Rows written before this migration get the agent of
-- a session that is still live (a stop notice needs the acknowledgement events, which
-- older stores do not have).
ALTER TABLE rm_sessions ADD COLUMN agent_id TEXT NOT NULL DEFAULT '';
UPDATE rm_sessions
SET agent_id = COALESCE((doc::jsonb) -> 'allocations' -> 0 ->> 'agent_id', '')
WHERE status IN ('SCHEDULED', 'PREPARING', 'PULLING', 'PREPARED', 'CREATING', 'RUNNING',
                 'RESTARTING', 'RUNNING_DEGRADED', 'TERMINATING');
CREATE INDEX rm_sessions_agent ON rm_sessions (generation, agent_id) WHERE agent_id <> '';

-- pending_queue: sessions not evaluated because a strict queue is blocked ahead of
-- them: their 1-based position and the `queue_order` message naming the blocking
-- session (written by the scheduler like `retries`; not events: positions move with
-- the queue). NULL for a session the last pass evaluated.
ALTER TABLE rm_pending_queue ADD COLUMN queue_position BIGINT;
ALTER TABLE rm_pending_queue ADD COLUMN queue_reason TEXT;

-- The last 16 KiB of a session's stdout and stderr, as its agent sent them with the
-- final report (`GET /v1/sessions/{id}/logs`). Not events: output is not a lifecycle
-- fact, and 32 KiB per session would weigh on every reader of the log.
CREATE TABLE session_logs
(
    session_id  TEXT   NOT NULL PRIMARY KEY,
    agent_id    TEXT   NOT NULL,
    stdout      TEXT   NOT NULL,
    stderr      TEXT   NOT NULL,
    reported_ms BIGINT NOT NULL
);
