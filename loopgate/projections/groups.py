"""The ``groups`` table: named sets of members a request can be routed to (``group:<name>``)."""

from __future__ import annotations

import msgspec

from loopgate.events import GroupDefined, GroupDeleted, RecordedEvent
from loopgate.projections import Statement

TABLE = "groups"
EVENTS = (GroupDefined, GroupDeleted)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case GroupDefined(workspace_id=ws, name=name, members=members, defined_at=at):
            # Delete then insert: one statement pair on both backends, no upsert dialects.
            return [
                ("DELETE FROM groups WHERE workspace_id = ? AND name = ?", (ws, name)),
                (
                    "INSERT INTO groups (workspace_id, name, members, defined_at)"
                    " VALUES (?, ?, ?, ?)",
                    (ws, name, msgspec.json.encode(members).decode(), at),
                ),
            ]
        case GroupDeleted(workspace_id=ws, name=name):
            return [("DELETE FROM groups WHERE workspace_id = ? AND name = ?", (ws, name))]
        case _:
            return []
