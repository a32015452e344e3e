-- New deliveries: $1 is a JSON array of {delivery_id, target, session_id, owner, url,
-- position, created_ms, body}. Due at once. A delivery id is derived from the event's
-- position and the target, so a row written before a crash or a rebuild is kept as it
-- is (with its attempts), never written twice.
INSERT INTO webhook_deliveries (delivery_id, target, session_id, owner, url, position,
                                status, next_attempt_ms, created_ms, body)
SELECT r.delivery_id, r.target, r.session_id, r.owner, r.url, r.position, 'pending',
       r.created_ms, r.created_ms, r.body
FROM jsonb_to_recordset($1::jsonb) AS r(delivery_id text, target text, session_id text,
     owner text, url text, position bigint, created_ms bigint, body text)
ON CONFLICT (delivery_id) DO NOTHING
