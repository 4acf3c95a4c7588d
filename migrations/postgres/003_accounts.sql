-- Accounts: operators, their recent failed logins and their API keys
-- (see loopgate/projections/users.py, login_failures.py and api_keys.py).

-- username_key is the lower-cased username: usernames are unique without
-- regard to case, and a clash is how two racing registrations are told apart.
CREATE TABLE users (
    user_id       TEXT PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL,
    last_login_at TIMESTAMPTZ,
    version       INTEGER NOT NULL
);

-- Failed logins since the user's last successful one, pruned to the lock-out window.
CREATE TABLE login_failures (
    user_id   TEXT    NOT NULL,
    version   INTEGER NOT NULL,
    failed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, version)
);

-- Only the SHA-256 of a key is kept. last_used_at does not come from the log:
-- it is touched in place (at most once a minute) and is empty after a rebuild.
CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    user_id      TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    key_hash     TEXT    NOT NULL UNIQUE,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    version      INTEGER NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);
