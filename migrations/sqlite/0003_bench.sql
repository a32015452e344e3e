-- Benchmark baseline table: NOT used by the service.
--
-- The same table as migrations/postgres/0003_bench.sql (one mutable status row per
-- session, the baseline design SPEC §10 measures). `sessiond bench append` only runs the
-- status-row cells on PostgreSQL (SERIALIZABLE and its serialization failures are what is
-- measured; SQLite has one writer at a time, so there is nothing comparable); the table
-- exists here too so both migration directories stay numbered in step.
CREATE TABLE bench_session_status
(
    id         TEXT PRIMARY KEY,  -- a synthetic session id ('s42')
    status     TEXT NOT NULL,     -- the mutable status the benchmark's transactions cycle
    updated_at TEXT               -- ISO-8601 UTC, set by every update
) STRICT;
