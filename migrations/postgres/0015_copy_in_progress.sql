-- A store that `sessionctl store copy` is writing, or was writing when it was
-- interrupted: one row from before the copy's first write until its verification passed.
-- `sessiond serve` refuses a store with this row (it may hold only part of the log);
-- a copy into it is refused as for any non-empty target.
CREATE TABLE copy_in_progress
(
    id         integer PRIMARY KEY CHECK (id = 1),
    source     text NOT NULL,
    started_at text NOT NULL
);
