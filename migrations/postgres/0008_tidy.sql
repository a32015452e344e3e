-- The benchmark's baseline table (`bench_session_status`, created by the former
-- migration 0003_bench) is not the service's: the benchmark (`sessiond-bench`, in
-- `bench/`) now creates it in its own database (`bench/sql/*/schema.sql`). Stores
-- created before the move drop it here; 0003 stays recorded in their history and the
-- migrator ignores it (migrations/README.md).
DROP TABLE IF EXISTS bench_session_status;

-- 0001 says the snapshots table is "used for long streams such as agents": it is not.
-- Nothing reads or writes snapshots (every stream is folded from its events; name
-- claims and pending quotas load their last event only). The table keeps postgres-es's
-- layout for when snapshots are added. A released migration is never edited (its
-- checksum is recorded), so the correction is recorded here, on the table itself.
COMMENT ON TABLE snapshots IS
    'postgres-es layout; not used by sessiond yet (streams are folded from their events)';
