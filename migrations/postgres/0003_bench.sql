-- Benchmark baseline table: NOT used by the service.
--
-- `sessiond bench append` (src/bench.rs) compares our append path with the design SPEC §10
-- measures as a baseline: one mutable status row per session, changed in place by a
-- SERIALIZABLE read-modify-write transaction (SELECT the status, UPDATE it). The bench
-- truncates and re-fills this table before each of its cells; nothing else reads or
-- writes it. It lives in a migration (not created at run time) because all schema does.
CREATE TABLE bench_session_status
(
    id         text PRIMARY KEY,  -- a synthetic session id ('s42')
    status     text NOT NULL,     -- the mutable status the benchmark's transactions cycle
    updated_at timestamptz        -- set by every update (a second changed column)
);
