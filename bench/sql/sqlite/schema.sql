-- The benchmark's baseline table (SQLite); the service never uses it.
--
-- The same table as postgres/schema.sql (one mutable status row per session, the
-- baseline design SPEC §10 measures). `sessiond-bench append` only runs the status-row
-- cells on PostgreSQL (SERIALIZABLE and its serialization failures are what is
-- measured; SQLite has one writer at a time, so there is nothing comparable); the
-- table is created here too so both backends get the same set-up. No arguments.
CREATE TABLE bench_session_status
(
    id         TEXT PRIMARY KEY,  -- a synthetic session id ('s42')
    status     TEXT NOT NULL,     -- the mutable status the benchmark's transactions cycle
    updated_at TEXT               -- ISO-8601 UTC, set by every update
) STRICT
