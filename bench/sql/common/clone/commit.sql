-- Commits the connection's baseline transaction. No arguments.
COMMIT
