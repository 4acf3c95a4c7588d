"""The ``policies`` table: each workspace's rules as last set, with their version."""

from __future__ import annotations

import msgspec

from loopgate.events import PolicySet, RecordedEvent
from loopgate.projections import Statement

TABLE = "policies"
EVENTS = (PolicySet,)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case PolicySet(workspace_id=ws, version=version, rules=rules, set_at=at):
            # Delete then insert: one statement pair on both backends, no upsert dialects.
            return [
                ("DELETE FROM policies WHERE workspace_id = ?", (ws,)),
                (
                    "INSERT INTO policies (workspace_id, version, rules, set_by, set_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (ws, version, msgspec.json.encode(rules).decode(), record.meta.actor, at),
                ),
            ]
        case _:
            return []
