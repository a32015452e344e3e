-- Records agent $1's heartbeat at $2 (epoch ms); a late, older heartbeat never moves
-- the time back. A plain upsert, not an event (SPEC §1.4).
INSERT INTO agent_heartbeats (agent_id, last_seen_ms)
VALUES ($1, $2)
ON CONFLICT (agent_id) DO UPDATE
SET last_seen_ms = CASE WHEN excluded.last_seen_ms > agent_heartbeats.last_seen_ms
                        THEN excluded.last_seen_ms
                        ELSE agent_heartbeats.last_seen_ms END
