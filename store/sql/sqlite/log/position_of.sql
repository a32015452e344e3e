-- The event at global position $1 exists (its transaction id is always 0).
SELECT 0 FROM events WHERE global_position = $1
