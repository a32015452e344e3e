-- How many events follow position $2, and when the oldest of them was recorded.
SELECT count(*), min(recorded_at) FROM events WHERE global_position > $2
