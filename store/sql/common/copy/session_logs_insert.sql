-- Writes one copied session_logs row exactly as it was stored.
INSERT INTO session_logs (session_id, agent_id, stdout, stderr, reported_ms)
VALUES ($1, $2, $3, $4, $5)
