-- Failed logins are throttled per client address (see loopgate/projections/login_failures.py):
-- each row says where it came from; '' for failures recorded before addresses were.
ALTER TABLE login_failures ADD COLUMN address TEXT NOT NULL DEFAULT '';
CREATE INDEX login_failures_by_address ON login_failures (address, failed_at);
