-- The log tails of session $1, if its agent sent any.
SELECT agent_id, stdout, stderr, reported_ms FROM session_logs WHERE session_id = $1
