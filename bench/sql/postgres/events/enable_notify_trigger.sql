-- Turns the `events_notify` trigger (the NOTIFY of every append) back on. No arguments.
ALTER TABLE events ENABLE TRIGGER events_notify
