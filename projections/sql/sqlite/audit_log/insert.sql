-- Appends a batch to the timeline of generation $1: $2 is a JSON array with one object
-- per event (global_position, transaction_id, aggregate_type, aggregate_id, sequence,
-- event_type, actor, occurred_at, recorded_at).
INSERT INTO rm_audit_log (generation, global_position, transaction_id, aggregate_type,
                          aggregate_id, sequence, event_type, actor, occurred_at, recorded_at)
SELECT $1, value ->> '$.global_position', value ->> '$.transaction_id',
       value ->> '$.aggregate_type', value ->> '$.aggregate_id', value ->> '$.sequence',
       value ->> '$.event_type', value ->> '$.actor', value ->> '$.occurred_at',
       value ->> '$.recorded_at'
FROM json_each($2)
