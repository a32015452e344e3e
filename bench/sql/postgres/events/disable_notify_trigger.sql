-- Turns off the `events_notify` trigger (the NOTIFY of every append), for the cells
-- that measure the append path without it. No arguments.
ALTER TABLE events DISABLE TRIGGER events_notify
