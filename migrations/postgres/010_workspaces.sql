-- Workspaces (loopgate/projections/workspaces.py, members.py, groups.py,
-- identities.py, invitations.py). A workspace id is the tenant string the
-- log already uses: 'local' (the default workspace) or, for a self-registered
-- user, that user's id. A user is a member of one workspace.
CREATE TABLE workspaces (
    workspace_id TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE members (
    workspace_id TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    role         TEXT NOT NULL,
    added_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
CREATE UNIQUE INDEX members_user ON members (user_id);

-- members: a JSON array of user ids.
CREATE TABLE groups (
    workspace_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    members      TEXT NOT NULL,
    defined_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, name)
);

-- A channel account (a Telegram user id) acts as one member.
CREATE TABLE identities (
    channel      TEXT NOT NULL,
    external_id  TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    workspace_id TEXT NOT NULL,
    display      TEXT,
    linked_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, external_id)
);
CREATE INDEX identities_user ON identities (user_id);

-- Only the SHA-256 of an invitation's token is kept.
CREATE TABLE invitations (
    invitation_id TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    role          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    expires_at    TIMESTAMPTZ NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    accepted_at   TIMESTAMPTZ,
    accepted_by   TEXT,
    version       INTEGER NOT NULL
);
CREATE INDEX invitations_workspace ON invitations (workspace_id, created_at);

-- Who may answer a request (a JSON array of selectors), and which one the answer matched.
ALTER TABLE requests ADD COLUMN approvers TEXT NOT NULL DEFAULT '[]';
ALTER TABLE requests ADD COLUMN routed_by TEXT;
