-- One page of session_logs: $1 rows after skipping $2.
SELECT session_id, agent_id, stdout, stderr, reported_ms
FROM session_logs
ORDER BY session_id
LIMIT $1 OFFSET $2
