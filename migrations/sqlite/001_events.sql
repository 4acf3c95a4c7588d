-- The log: append-only, one row per event. Positions are assigned by the
-- store under its write lock (never by AUTOINCREMENT), so they are gap-free.
CREATE TABLE events (
    position    INTEGER PRIMARY KEY,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    meta        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX events_type_position ON events (type, position);
