-- Rolls the connection's transaction back. No arguments.
ROLLBACK
