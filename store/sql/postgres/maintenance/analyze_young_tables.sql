-- ANALYZE every table `young_tables` names (the same condition, re-checked here so the
-- statement needs no dynamic SQL from the caller). ANALYZE reads a sample, takes only a
-- lock that lets reads and writes go on, and invalidates the cached plans of the table.
DO $$
DECLARE
    t regclass;
BEGIN
    FOR t IN
        SELECT relid::regclass
        FROM pg_stat_user_tables
        WHERE last_analyze IS NULL
          AND last_autoanalyze IS NULL
          AND n_live_tup + n_mod_since_analyze >= 1000
    LOOP
        EXECUTE format('ANALYZE %s', t);
    END LOOP;
END
$$
