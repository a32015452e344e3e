-- The whole live timeline ($1: the projection's name), in log order.
SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, actor,
       occurred_at, recorded_at
FROM rm_audit_log
WHERE generation = COALESCE((SELECT generation FROM projection_checkpoints WHERE name = $1), 1)
ORDER BY transaction_id, global_position
