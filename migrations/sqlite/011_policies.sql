-- Approval policies (loopgate/projections/policies.py, requests.py).
-- A workspace's current rules: a JSON array of rules, as PolicySet recorded them.
CREATE TABLE policies (
    workspace_id TEXT PRIMARY KEY,
    version      INTEGER NOT NULL,
    rules        TEXT NOT NULL,
    set_by       TEXT NOT NULL,
    set_at       TEXT NOT NULL
);

-- A request's requirements, its votes so far (a JSON array), the rule that
-- applied, and its reminders, warning and escalations (fired steps, a JSON array).
ALTER TABLE requests ADD COLUMN quorum INTEGER NOT NULL DEFAULT 1;
ALTER TABLE requests ADD COLUMN veto BOOLEAN NOT NULL DEFAULT 1;
ALTER TABLE requests ADD COLUMN requester TEXT;
ALTER TABLE requests ADD COLUMN votes TEXT NOT NULL DEFAULT '[]';
ALTER TABLE requests ADD COLUMN approvals INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN policy_version INTEGER;
ALTER TABLE requests ADD COLUMN rule TEXT;
ALTER TABLE requests ADD COLUMN decided_policy TEXT;
ALTER TABLE requests ADD COLUMN decision_reason TEXT;
ALTER TABLE requests ADD COLUMN remind_every_seconds INTEGER;
ALTER TABLE requests ADD COLUMN warn_before_expiry_seconds INTEGER;
ALTER TABLE requests ADD COLUMN escalation TEXT NOT NULL DEFAULT '[]';
ALTER TABLE requests ADD COLUMN escalations TEXT NOT NULL DEFAULT '[]';
ALTER TABLE requests ADD COLUMN reminders INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN warned_at TEXT;
