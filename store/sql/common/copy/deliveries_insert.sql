-- Writes one copied webhook_deliveries row exactly as it was stored.
INSERT INTO webhook_deliveries (delivery_id, target, session_id, owner, url, position, status,
                                attempts, round_attempts, last_status_code, last_error,
                                next_attempt_ms, created_ms, delivered_ms, body)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
