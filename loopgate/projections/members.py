"""The ``members`` table: who belongs to which workspace, with which role.

A user is a member of one workspace (``members_user`` is unique). A user
registered before workspaces existed is the owner of their own.
"""

from __future__ import annotations

from loopgate.events import (
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    RecordedEvent,
    UserRegistered,
)
from loopgate.projections import Statement

TABLE = "members"
EVENTS = (MemberAdded, MemberRoleChanged, MemberRemoved, UserRegistered)

_INSERT = "INSERT INTO members (workspace_id, user_id, role, added_at) VALUES (?, ?, ?, ?)"


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case MemberAdded(workspace_id=ws, user_id=uid, role=role, added_at=at):
            return [(_INSERT, (ws, uid, role, at))]
        case UserRegistered(workspace_id=None, user_id=uid, registered_at=at):
            return [(_INSERT, (uid, uid, "owner", at))]
        case MemberRoleChanged(workspace_id=ws, user_id=uid, role=role):
            return [
                (
                    "UPDATE members SET role = ? WHERE workspace_id = ? AND user_id = ?",
                    (role, ws, uid),
                )
            ]
        case MemberRemoved(workspace_id=ws, user_id=uid):
            return [("DELETE FROM members WHERE workspace_id = ? AND user_id = ?", (ws, uid))]
        case _:
            return []
