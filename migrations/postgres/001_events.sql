-- The log: append-only, one row per event. Positions are assigned by the
-- store under an advisory lock (never by a sequence, which leaves gaps when a
-- transaction rolls back), so they are gap-free and commit-ordered.
CREATE TABLE events (
    position    BIGINT      PRIMARY KEY,
    stream      TEXT        NOT NULL,
    version     INTEGER     NOT NULL,
    type        TEXT        NOT NULL,
    data        JSONB       NOT NULL,
    meta        JSONB       NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    prev_hash   TEXT        NOT NULL,
    hash        TEXT        NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX events_type_position ON events (type, position);
