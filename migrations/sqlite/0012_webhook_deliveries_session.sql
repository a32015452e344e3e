-- A session's deliveries (its delivery history), by position.
CREATE INDEX webhook_deliveries_session ON webhook_deliveries (session_id, position);
