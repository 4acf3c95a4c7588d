-- An API key's kind (ApiKeyCreated.kind): 'agent' keys never answer, 'operator' keys do.
-- Keys issued before kinds existed are agent keys, as their events replay.
ALTER TABLE api_keys ADD COLUMN kind TEXT NOT NULL DEFAULT 'agent';
