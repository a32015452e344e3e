-- The newest position (the transaction id is always 0 on SQLite).
SELECT 0, global_position FROM events ORDER BY global_position DESC LIMIT 1
