-- Queues a batch of sessions in generation $1: $2 is a JSON array with one object per
-- session (session_id, scaling_group, owner, session_type, priority, enqueue_position,
-- enqueued_at, enqueued_ms, deadline_ms). A session already queued is kept as it is.
-- (`WHERE true` lets SQLite parse the upsert clause after a SELECT.)
INSERT INTO rm_pending_queue (generation, session_id, scaling_group, owner, session_type,
                              priority, enqueue_position, enqueued_at, enqueued_ms, deadline_ms)
SELECT $1, value ->> '$.session_id', value ->> '$.scaling_group', value ->> '$.owner',
       value ->> '$.session_type', value ->> '$.priority', value ->> '$.enqueue_position',
       value ->> '$.enqueued_at', value ->> '$.enqueued_ms', value ->> '$.deadline_ms'
FROM json_each($2)
WHERE true
ON CONFLICT (generation, session_id) DO NOTHING
