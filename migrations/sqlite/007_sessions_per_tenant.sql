-- Session ids are per tenant: the same session_id registered by two tenants is
-- two sessions, so the key is (tenant, session_id). SQLite cannot change a
-- primary key in place: build the new table, copy, drop the old, rename.
-- Every row copies: the old key was session_id alone, so no two rows clash.
-- The old sessions_tenant index goes: the key's leading column serves it.
CREATE TABLE sessions_per_tenant (
    tenant         TEXT    NOT NULL,
    session_id     TEXT    NOT NULL,
    client_id      TEXT    NOT NULL,
    telegram_id    INTEGER,
    active         BOOLEAN NOT NULL,
    registered_at  TEXT    NOT NULL,
    deactivated_at TEXT,
    version        INTEGER NOT NULL,
    callback_url   TEXT,
    PRIMARY KEY (tenant, session_id)
);
INSERT INTO sessions_per_tenant (tenant, session_id, client_id, telegram_id, active,
                                 registered_at, deactivated_at, version, callback_url)
SELECT tenant, session_id, client_id, telegram_id, active,
       registered_at, deactivated_at, version, callback_url
FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_per_tenant RENAME TO sessions;
CREATE INDEX sessions_telegram ON sessions (telegram_id) WHERE telegram_id IS NOT NULL;

-- A request's session is (tenant, session_id) now; look it up that way.
DROP INDEX requests_session;
CREATE INDEX requests_session ON requests (tenant, session_id, created_at);
