-- The benchmark's baseline table (PostgreSQL); the service never uses it.
--
-- `sessiond-bench append` compares our append path with the design SPEC §10 measures
-- as a baseline: one mutable status row per session, changed in place by a
-- SERIALIZABLE read-modify-write transaction (SELECT the status, UPDATE it). The bench
-- creates this table at the start of the scenario, on its own fresh database (after
-- common/drop_schema.sql), and truncates and re-fills it before each of its cells;
-- nothing else reads or writes it. No arguments.
CREATE TABLE bench_session_status
(
    id         text PRIMARY KEY,  -- a synthetic session id ('s42')
    status     text NOT NULL,     -- the mutable status the benchmark's transactions cycle
    updated_at timestamptz        -- set by every update (a second changed column)
)
