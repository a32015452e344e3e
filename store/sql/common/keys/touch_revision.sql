-- Writes the revocation revision back unchanged: a write that changes nothing, to learn
-- at start-up whether the store accepts writes at all (a read-only file, mount or role).
UPDATE api_key_revision SET revision = revision WHERE singleton = 1
