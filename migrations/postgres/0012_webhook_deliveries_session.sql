-- A session's deliveries (its delivery history), by position.
CREATE INDEX webhook_deliveries_session ON webhook_deliveries (session_id, position);
-- The four statuses, enforced: the outbox's statements say "pending" as "not one of
-- the other three" (outbox/due.sql says why), which is only the same with this.
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_status_known
    CHECK (status IN ('pending', 'failed', 'delivered', 'dead'));
