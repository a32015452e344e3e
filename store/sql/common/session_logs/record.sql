-- Records the log tails agent $2 sent for session $1 with its final report ($3 stdout,
-- $4 stderr, at $5 epoch ms); a later report replaces them. Not an event.
INSERT INTO session_logs (session_id, agent_id, stdout, stderr, reported_ms)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (session_id) DO UPDATE
SET agent_id = excluded.agent_id,
    stdout = excluded.stdout,
    stderr = excluded.stderr,
    reported_ms = excluded.reported_ms
