-- The tables of the file, before any migration runs: an empty list is a blank database a
-- copy may migrate and fill; a sessiond store has `events`.
SELECT name
FROM sqlite_master
WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
ORDER BY name
