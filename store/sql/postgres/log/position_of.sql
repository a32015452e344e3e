-- The writing transaction of the event at global position $1.
SELECT transaction_id::text::bigint FROM events WHERE global_position = $1
