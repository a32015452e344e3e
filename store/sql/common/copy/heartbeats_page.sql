-- One page of agent_heartbeats: $1 rows after skipping $2.
SELECT agent_id, last_seen_ms
FROM agent_heartbeats
ORDER BY agent_id
LIMIT $1 OFFSET $2
