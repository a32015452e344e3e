-- Writes one copied agent_heartbeats row exactly as it was stored.
INSERT INTO agent_heartbeats (agent_id, last_seen_ms)
VALUES ($1, $2)
