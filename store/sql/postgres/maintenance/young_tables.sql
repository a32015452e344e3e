-- Tables of this database that PostgreSQL has never analyzed although they hold at
-- least 1,000 rows (inserted or changed): the planner knows nothing about them and may
-- pick a plan whose cost grows with the square of their size (seen on the outbox of a
-- fresh deployment: 8-10 s per due query at 5,000 deliveries). Autovacuum analyzes
-- them within a minute or so; this finds them sooner.
SELECT relname::text
FROM pg_stat_user_tables
WHERE last_analyze IS NULL
  AND last_autoanalyze IS NULL
  AND n_live_tup + n_mod_since_analyze >= 1000
ORDER BY relname
