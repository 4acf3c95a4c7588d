"""The ``api_keys`` table: each key's owner, label, kind, display prefix and SHA-256.

Keys are found by ``key_hash`` (unique), never by the raw key, which is not
stored anywhere. ``last_used_at`` is the one column the log does not explain:
it records use, not an action, so the account service touches it in place
(at most once a minute) through ``EventStore.execute``; a rebuild leaves it
empty until the key is used again.
"""

from __future__ import annotations

from loopgate.events import ApiKeyCreated, ApiKeyRevoked, RecordedEvent
from loopgate.projections import Statement

TABLE = "api_keys"
EVENTS = (ApiKeyCreated, ApiKeyRevoked)
UNLOGGED_COLUMNS = ("last_used_at",)  # touched in place, not by an event


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case ApiKeyCreated() as created:
            return [
                (
                    "INSERT INTO api_keys (key_id, user_id, label, prefix, key_hash, created_at,"
                    " expires_at, kind, revoked_at, last_used_at, version)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                    (
                        created.key_id,
                        created.user_id,
                        created.label,
                        created.prefix,
                        created.key_hash,
                        created.created_at,
                        created.expires_at,
                        created.kind,
                        record.version,
                    ),
                )
            ]
        case ApiKeyRevoked(key_id=kid, revoked_at=at):
            return [
                (
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?), version = ?"
                    " WHERE key_id = ?",
                    (at, record.version, kid),
                )
            ]
        case _:
            return []
