-- Checkpoints the WAL into the database file and truncates it before a cell, so every
-- cell starts with an empty WAL. No arguments.
PRAGMA wal_checkpoint(TRUNCATE)
