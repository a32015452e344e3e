-- The unfinished copy this store is, if any: its source and when it started.
SELECT source, started_at FROM copy_in_progress
