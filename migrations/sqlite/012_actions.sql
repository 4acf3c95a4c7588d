-- Approvals bound to the action (loopgate/projections/requests.py, grants.py).
-- A request's action (JSON {tool, args}) and its fingerprint, what it lets an
-- approver do, the grant that approved it at creation, and the action approved.
ALTER TABLE requests ADD COLUMN action TEXT;
ALTER TABLE requests ADD COLUMN fingerprint TEXT;
ALTER TABLE requests ADD COLUMN editable BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN args_schema TEXT;
ALTER TABLE requests ADD COLUMN grantable BOOLEAN NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN grant_id TEXT;
ALTER TABLE requests ADD COLUMN decided_action TEXT;
ALTER TABLE requests ADD COLUMN decided_fingerprint TEXT;
ALTER TABLE requests ADD COLUMN edited BOOLEAN NOT NULL DEFAULT 0;

-- Standing grants: a session's matching actions are approved at creation until
-- expires_at, unless revoked. A creation looks one up by session and fingerprint or tool.
CREATE TABLE grants (
    grant_id     TEXT PRIMARY KEY,
    tenant       TEXT NOT NULL,
    session_id   TEXT NOT NULL,
    scope        TEXT NOT NULL,
    tool         TEXT NOT NULL,
    fingerprint  TEXT,
    request_id   TEXT NOT NULL,
    issued_by    TEXT NOT NULL,
    issued_at    TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    revoked_by   TEXT,
    revoked_at   TEXT
);
CREATE INDEX grants_session ON grants (tenant, session_id, tool);
CREATE INDEX grants_tenant ON grants (tenant, issued_at);
