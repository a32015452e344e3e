-- New deliveries: $1 is a JSON array of {delivery_id, target, session_id, owner, url,
-- position, created_ms, body}. Due at once. A delivery id is derived from the event's
-- position and the target, so a row written before a crash or a rebuild is kept as it
-- is (with its attempts), never written twice.
INSERT INTO webhook_deliveries (delivery_id, target, session_id, owner, url, position,
                                status, next_attempt_ms, created_ms, body)
SELECT value ->> '$.delivery_id', value ->> '$.target', value ->> '$.session_id',
       value ->> '$.owner', value ->> '$.url', value ->> '$.position', 'pending',
       value ->> '$.created_ms', value ->> '$.created_ms', value ->> '$.body'
FROM json_each($1)
WHERE true
ON CONFLICT (delivery_id) DO NOTHING
