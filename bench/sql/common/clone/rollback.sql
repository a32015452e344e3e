-- Rolls the connection's baseline transaction back. No arguments.
ROLLBACK
