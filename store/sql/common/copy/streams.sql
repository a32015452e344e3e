-- Every stream with its number of events and its highest global position, to verify a
-- copy stream by stream.
SELECT aggregate_type, aggregate_id, count(*) AS events, max(global_position) AS max_position
FROM events
GROUP BY aggregate_type, aggregate_id
