-- The tables of the connection's schema, before any migration runs: an empty list is a
-- blank database a copy may migrate and fill; a sessiond store has `events`.
SELECT table_name::text
FROM information_schema.tables
WHERE table_schema = current_schema()
ORDER BY table_name
