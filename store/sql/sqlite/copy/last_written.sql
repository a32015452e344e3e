-- The last row of the log in commit order (on SQLite: the highest position, always
-- readable).
SELECT 0 AS transaction_id, global_position
FROM events
ORDER BY global_position DESC
LIMIT 1
