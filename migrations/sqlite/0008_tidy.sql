-- The benchmark's baseline table (`bench_session_status`, created by the former
-- migration 0003_bench) is not the service's: the benchmark (`sessiond-bench`, in
-- `bench/`) now creates it in its own database (`bench/sql/*/schema.sql`). Stores
-- created before the move drop it here; 0003 stays recorded in their history and the
-- migrator ignores it (migrations/README.md).
DROP TABLE IF EXISTS bench_session_status;

-- As on PostgreSQL: nothing reads or writes the snapshots table yet (streams are
-- folded from their events); it keeps sqlite-es's layout for when snapshots are added.
