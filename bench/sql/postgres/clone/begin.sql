-- Starts a baseline transaction (the writers' short ones and the clone's long one):
-- SERIALIZABLE, as the original design ran them. No arguments.
BEGIN ISOLATION LEVEL SERIALIZABLE
