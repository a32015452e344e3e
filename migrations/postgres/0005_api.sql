-- The command API's own tables (SPEC §4; docs/adr/0004-command-api.md). None of them
-- is event-sourced: API keys and idempotency records are access-control and
-- request bookkeeping, not domain facts. Times are ISO-8601 UTC text, as in the read
-- models (portable across both backends).

-- API keys. The key itself is never stored: only the hex SHA-256 of it. Keys are 256
-- random bits, so a fast hash suffices and authentication is one indexed lookup.
CREATE TABLE api_keys
(
    id          TEXT PRIMARY KEY,         -- public id (key_...): safe to log; the actor of events
    key_hash    TEXT NOT NULL UNIQUE,     -- hex SHA-256 of the whole key
    role        TEXT NOT NULL CHECK (role IN ('admin', 'user', 'agent')),
    owner       TEXT,                     -- the owner a user key acts as
    agent_id    TEXT,                     -- the agent an agent key is bound to
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,                     -- set by `sessionctl keys revoke`; revoked keys get 401
    CHECK ((role = 'user') = (owner IS NOT NULL)),
    CHECK ((role = 'agent') = (agent_id IS NOT NULL))
);

-- At most one row, ever: the admin key `sessiond serve` created on its first start.
-- Inserted in the same transaction as that key, so two replicas starting together on
-- an empty store create one bootstrap key between them, and revoking every key later
-- never makes a restart mint a new one.
CREATE TABLE api_bootstrap
(
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    key_id     TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Idempotency-Key records of POST /v1/sessions. The first request with a key inserts
-- the row (status_code NULL = in flight); a concurrent or later retry with the same key
-- and the same body waits for it and gets the stored response, with another body 422.
-- A record left in flight by a crashed process is taken over after a while (see
-- docs/adr/0004-command-api.md for what that implies).
CREATE TABLE idempotency_keys
(
    scope        TEXT   NOT NULL,         -- whose key space: 'user:<owner>' or 'admin'
    key          TEXT   NOT NULL,         -- the Idempotency-Key header
    request_hash TEXT   NOT NULL,         -- hex SHA-256 of the canonical JSON body
    request_id   TEXT   NOT NULL,         -- the request that holds the key (correlation id of its events)
    status_code  BIGINT,                  -- NULL while the first request runs
    response     TEXT,                    -- its JSON body
    created_at   TEXT   NOT NULL,
    completed_at TEXT,
    PRIMARY KEY (scope, key)
);
-- purging old records is by age
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
