-- The tables of the clone-latency baseline (SQLite); the service never uses them.
--
-- The same tables as postgres/clone/schema.sql: mutable status rows for vfolders and
-- sessions, the original design SPEC §10 names as the baseline of the clone, where the
-- copy runs inside one transaction (on SQLite: BEGIN IMMEDIATE, the write lock taken
-- up front) that has touched them. Run as one script at the start of the baseline.
-- No arguments.
DROP TABLE IF EXISTS bench_sessions;
DROP TABLE IF EXISTS bench_vfolders;
CREATE TABLE bench_vfolders
(
    id         TEXT PRIMARY KEY,  -- 'v0' .. 'v99'; 'v0' is the folder being cloned
    status     TEXT NOT NULL,     -- 'ready' | 'cloning'
    updated_at TEXT               -- ISO-8601 UTC
) STRICT;
CREATE TABLE bench_sessions
(
    id         TEXT PRIMARY KEY,  -- 's0' .. for the pre-filled rows, a UUID for new ones
    vfolder_id TEXT NOT NULL,     -- the folder the session mounts
    status     TEXT NOT NULL,     -- the mutable status the writers cycle
    updated_at TEXT               -- ISO-8601 UTC
) STRICT;
CREATE INDEX bench_sessions_vfolder ON bench_sessions (vfolder_id);
