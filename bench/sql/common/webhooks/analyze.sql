-- Fresh planner statistics of the outbox (what autovacuum would eventually gather).
ANALYZE webhook_deliveries
