-- Appends a batch to the timeline of generation $1: $2 is a JSON array with one object
-- per event (global_position, transaction_id, aggregate_type, aggregate_id, sequence,
-- event_type, actor, occurred_at, recorded_at).
INSERT INTO rm_audit_log (generation, global_position, transaction_id, aggregate_type,
                          aggregate_id, sequence, event_type, actor, occurred_at, recorded_at)
SELECT $1, r.global_position, r.transaction_id, r.aggregate_type, r.aggregate_id, r.sequence,
       r.event_type, r.actor, r.occurred_at, r.recorded_at
FROM jsonb_to_recordset($2::jsonb) AS r(global_position bigint, transaction_id bigint,
     aggregate_type text, aggregate_id text, sequence bigint, event_type text, actor text,
     occurred_at text, recorded_at text)
