-- Queues a batch of sessions in generation $1: $2 is a JSON array with one object per
-- session (session_id, scaling_group, owner, session_type, priority, enqueue_position,
-- enqueued_at, enqueued_ms, deadline_ms). A session already queued is kept as it is.
INSERT INTO rm_pending_queue (generation, session_id, scaling_group, owner, session_type,
                              priority, enqueue_position, enqueued_at, enqueued_ms, deadline_ms)
SELECT $1, r.session_id, r.scaling_group, r.owner, r.session_type, r.priority,
       r.enqueue_position, r.enqueued_at, r.enqueued_ms, r.deadline_ms
FROM jsonb_to_recordset($2::jsonb) AS r(session_id text, scaling_group text, owner text,
     session_type text, priority bigint, enqueue_position bigint, enqueued_at text,
     enqueued_ms bigint, deadline_ms bigint)
ON CONFLICT (generation, session_id) DO NOTHING
