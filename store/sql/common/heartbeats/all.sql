-- Every agent's last heartbeat (epoch ms).
SELECT agent_id, last_seen_ms FROM agent_heartbeats
