-- Drops the benchmark's baseline table if it exists (a re-run on the same database, or
-- a service schema that still has it), before schema.sql creates it afresh. It holds
-- nothing but the bench's synthetic rows. No arguments.
DROP TABLE IF EXISTS bench_session_status
