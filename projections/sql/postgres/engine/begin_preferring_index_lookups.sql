-- The projection transaction's BEGIN, sent as one simple query with its setting.
-- Read-model writes are key lookups and upserts; right after a table was created,
-- reset or bulk-filled, the planner's statistics call it tiny and it picks sequential
-- scans (measured: catch-up went quadratic). Every read-model query has an index.
BEGIN; SET LOCAL enable_seqscan = off
