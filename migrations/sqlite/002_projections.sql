-- Query tables derived from the log (see loopgate/projections/).
CREATE TABLE sessions (
    session_id     TEXT PRIMARY KEY,
    client_id      TEXT    NOT NULL,
    telegram_id    INTEGER,
    tenant         TEXT    NOT NULL,
    active         BOOLEAN NOT NULL,
    registered_at  TEXT    NOT NULL,
    deactivated_at TEXT,
    version        INTEGER NOT NULL
);
CREATE INDEX sessions_tenant ON sessions (tenant);

CREATE TABLE requests (
    request_id          TEXT PRIMARY KEY,
    session_id          TEXT    NOT NULL,
    client_id           TEXT    NOT NULL,
    tenant              TEXT    NOT NULL,
    message             TEXT    NOT NULL,
    request_type        TEXT    NOT NULL,
    options             TEXT    NOT NULL,
    allow_text          BOOLEAN NOT NULL,
    metadata            TEXT    NOT NULL,
    timeout_seconds     INTEGER NOT NULL,
    on_timeout          TEXT    NOT NULL,
    callback_url        TEXT,
    idempotency_key     TEXT,
    status              TEXT    NOT NULL,
    approved            BOOLEAN,
    response_option     TEXT,
    response_text       TEXT,
    responder           TEXT,
    channel             TEXT,
    external_message_id TEXT,
    created_at          TEXT    NOT NULL,
    expires_at          TEXT,
    delivered_at        TEXT,
    decided_at          TEXT,
    version             INTEGER NOT NULL
);
CREATE INDEX requests_tenant_status ON requests (tenant, status, created_at);
CREATE INDEX requests_session ON requests (session_id, created_at);
CREATE INDEX requests_open_expiry ON requests (expires_at) WHERE status IN ('pending', 'delivered');
CREATE UNIQUE INDEX requests_idempotency ON requests (tenant, idempotency_key) WHERE idempotency_key IS NOT NULL;
