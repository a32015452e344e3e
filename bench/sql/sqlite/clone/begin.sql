-- Starts a baseline transaction (the writers' short ones and the clone's long one):
-- IMMEDIATE, the write lock taken up front (SQLite's serializable: one writer at a
-- time; a deferred read-then-write transaction would fail at once with SQLITE_BUSY).
-- No arguments.
BEGIN IMMEDIATE
