-- The tables of the clone-latency baseline (PostgreSQL); the service never uses them.
--
-- `sessiond-bench clone-latency` compares sessiond's clone (a background task, no
-- transaction open while files are copied, SPEC §7.3) with the original design SPEC
-- §10 names as its baseline: mutable status rows for vfolders and sessions, and the
-- copy done inside one SERIALIZABLE transaction that has touched them. The bench runs
-- this whole script (several statements, simple query protocol) at the start of the
-- baseline, on its own fresh database; nothing else reads or writes these tables.
-- No arguments.
DROP TABLE IF EXISTS bench_sessions;
DROP TABLE IF EXISTS bench_vfolders;
CREATE TABLE bench_vfolders
(
    id         text PRIMARY KEY,  -- 'v0' .. 'v99'; 'v0' is the folder being cloned
    status     text NOT NULL,     -- 'ready' | 'cloning'
    updated_at timestamptz
);
CREATE TABLE bench_sessions
(
    id         text PRIMARY KEY,  -- 's0' .. for the pre-filled rows, a UUID for new ones
    vfolder_id text NOT NULL,     -- the folder the session mounts
    status     text NOT NULL,     -- the mutable status the writers cycle
    updated_at timestamptz
);
-- The clone's range read of the sessions mounting its folder goes through this index
-- (so its predicate lock covers that range, not the whole table).
CREATE INDEX bench_sessions_vfolder ON bench_sessions (vfolder_id);
