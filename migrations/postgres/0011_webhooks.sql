-- Webhooks (SPEC §8).
--
-- webhook_secrets: the signing secrets of subscriptions, sealed with the server's
-- key-encryption key (the dispatcher needs the bytes to sign, so they cannot be hashed).
-- Events name secrets by id only, so the event log never carries one.
CREATE TABLE webhook_secrets
(
    secret_id     TEXT NOT NULL PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- callback_secrets: one per owner, signs the deliveries to their sessions' callback_url
-- (created on first use).
CREATE TABLE callback_secrets
(
    owner         TEXT NOT NULL PRIMARY KEY,
    secret_sealed TEXT NOT NULL,
    created_at    TEXT NOT NULL
);

-- rm_webhooks: the folded WebhookSubscription aggregate, a document read model like
-- rm_vfolders (GET /v1/webhooks lists it).
CREATE TABLE rm_webhooks
(
    generation     BIGINT NOT NULL,
    id             TEXT   NOT NULL,
    enabled        BIGINT NOT NULL,
    first_position BIGINT NOT NULL,
    last_position  BIGINT NOT NULL,
    doc            TEXT   NOT NULL,
    PRIMARY KEY (generation, id)
);

-- The webhook_outbox projection's own state, as of its checkpoint: what each
-- subscription matched at each point of the log (url, filter, enabled, active secrets),
-- and what each live session is (the payload's fields). Rebuilt in generations.
CREATE TABLE rm_webhook_targets
(
    generation BIGINT NOT NULL,
    webhook_id TEXT   NOT NULL,
    enabled    BIGINT NOT NULL,
    url        TEXT   NOT NULL,
    filter     TEXT   NOT NULL,
    secrets    TEXT   NOT NULL,
    PRIMARY KEY (generation, webhook_id)
);

CREATE TABLE rm_webhook_sessions
(
    generation    BIGINT NOT NULL,
    session_id    TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    owner         TEXT   NOT NULL,
    session_type  TEXT   NOT NULL,
    scaling_group TEXT   NOT NULL,
    status        TEXT   NOT NULL,
    callback_url  TEXT,
    PRIMARY KEY (generation, session_id)
);

-- webhook_deliveries: the outbox. One row per (status change, matching subscription)
-- and per status change of a session with a callback_url, written by the
-- webhook_outbox projection in the transaction that advances its checkpoint. The
-- delivery id is derived from the event's position and the target, and rows are
-- inserted with ON CONFLICT DO NOTHING, so neither a crash nor a rebuild loses or
-- duplicates one. Not generation-scoped: the dispatcher's progress (attempts, outcome)
-- is kept across rebuilds.
--   target        the subscription id, or 'callback'
--   url           callback deliveries: the session's callback_url (a subscription's
--                 deliveries go to its current url)
--   status        pending (not attempted yet) | failed (an attempt failed, another is
--                 scheduled) | delivered | dead (the last attempt failed)
--   attempts      every attempt ever made; round_attempts: those since the last
--                 (re)delivery request, which index the retry schedule
--   *_ms          unix milliseconds
--   body          the exact bytes sent (signed), fixed when the row is written
CREATE TABLE webhook_deliveries
(
    delivery_id      TEXT   NOT NULL PRIMARY KEY,
    target           TEXT   NOT NULL,
    session_id       TEXT   NOT NULL,
    owner            TEXT   NOT NULL,
    url              TEXT,
    position         BIGINT NOT NULL,
    status           TEXT   NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    round_attempts   BIGINT NOT NULL DEFAULT 0,
    last_status_code BIGINT,
    last_error       TEXT,
    next_attempt_ms  BIGINT NOT NULL,
    created_ms       BIGINT NOT NULL,
    delivered_ms     BIGINT,
    body             TEXT   NOT NULL
);
-- What is due: open deliveries by due time.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms)
    WHERE status IN ('pending', 'failed');
-- Per-session order per endpoint: the earlier open delivery of the same chain.
CREATE INDEX webhook_deliveries_chain ON webhook_deliveries (target, session_id, position);
-- The backlog gauges (open and dead deliveries, the oldest open one).
CREATE INDEX webhook_deliveries_status ON webhook_deliveries (status, created_ms);
-- The delivery log of a subscription, by position.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (target, position);
