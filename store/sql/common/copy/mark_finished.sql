-- The copy into this store finished and was verified.
DELETE FROM copy_in_progress
