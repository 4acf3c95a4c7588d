-- Token buckets of the rate limits (loopgate/limits): bookkeeping, not facts.
-- Postgres shares them between server processes; SQLite keeps its buckets in
-- memory and leaves this table empty, so both schemas stay alike.
CREATE TABLE rate_buckets (
    name TEXT PRIMARY KEY,
    tokens DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL
);
