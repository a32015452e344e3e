-- How many events follow the cursor ($1 transaction id as text, $2 position), and when
-- the oldest of them was recorded.
SELECT count(*), min(recorded_at)::text
FROM events
WHERE (transaction_id, global_position) > ($1::text::xid8, $2)
