"""Audit: the log exported (NDJSON, CSV) and its hash chain verified."""
