"""The ``workspaces`` table: each workspace's id and name.

A user registered before workspaces existed owns one whose id is theirs (the
tenant they already had), so the log needs no rewrite: their
``UserRegistered`` without a ``workspace_id`` stands for it.
"""

from __future__ import annotations

from loopgate.events import RecordedEvent, UserRegistered, WorkspaceCreated
from loopgate.projections import Statement

TABLE = "workspaces"
EVENTS = (WorkspaceCreated, UserRegistered)

_INSERT = "INSERT INTO workspaces (workspace_id, name, created_at) VALUES (?, ?, ?)"


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case WorkspaceCreated(workspace_id=ws, name=name, created_at=at):
            return [(_INSERT, (ws, name, at))]
        case UserRegistered(workspace_id=None, user_id=uid, username=name, registered_at=at):
            return [(_INSERT, (uid, name, at))]
        case _:
            return []
