-- Revocations reach every replica (and every open stream) quickly: `revoke_key` bumps
-- this one-row counter in the same transaction as it revokes; each `sessiond serve`
-- polls it (cheap: one row) and, when it moved, reloads the revoked key ids, drops them
-- from its key cache and ends the streams they opened. SPEC §4, docs/adr/0004.
CREATE TABLE api_key_revision
(
    singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
    revision  BIGINT NOT NULL
);
INSERT INTO api_key_revision (singleton, revision) VALUES (1, 0);

-- The key watcher reads the revoked ids without scanning live keys.
CREATE INDEX api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
