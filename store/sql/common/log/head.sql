-- The highest global position committed so far (NULL: an empty log).
SELECT MAX(global_position) FROM events
