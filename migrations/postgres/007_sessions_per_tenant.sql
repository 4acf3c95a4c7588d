-- Session ids are per tenant: the same session_id registered by two tenants is
-- two sessions, so the key is (tenant, session_id). Every row keeps: the old
-- key was session_id alone, so no two rows clash. The old sessions_tenant
-- index goes: the key's leading column serves it.
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey;
ALTER TABLE sessions ADD PRIMARY KEY (tenant, session_id);
DROP INDEX sessions_tenant;

-- A request's session is (tenant, session_id) now; look it up that way.
DROP INDEX requests_session;
CREATE INDEX requests_session ON requests (tenant, session_id, created_at);
