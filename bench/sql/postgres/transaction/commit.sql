-- Commits the connection's transaction. No arguments.
COMMIT
