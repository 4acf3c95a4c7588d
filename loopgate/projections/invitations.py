"""The ``invitations`` table: single-use links to join a workspace, found by the token's SHA-256."""

from __future__ import annotations

from loopgate.events import InvitationAccepted, InvitationCreated, RecordedEvent
from loopgate.projections import Statement

TABLE = "invitations"
EVENTS = (InvitationCreated, InvitationAccepted)


def apply(record: RecordedEvent) -> list[Statement]:
    match record.event:
        case InvitationCreated() as made:
            return [
                (
                    "INSERT INTO invitations (invitation_id, workspace_id, role, token_hash,"
                    " expires_at, created_at, accepted_at, accepted_by, version)"
                    " VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?)",
                    (
                        made.invitation_id,
                        made.workspace_id,
                        made.role,
                        made.token_hash,
                        made.expires_at,
                        made.created_at,
                        record.version,
                    ),
                )
            ]
        case InvitationAccepted(invitation_id=iid, user_id=uid, accepted_at=at):
            return [
                (
                    "UPDATE invitations SET accepted_at = ?, accepted_by = ?, version = ?"
                    " WHERE invitation_id = ?",
                    (at, uid, record.version, iid),
                )
            ]
        case _:
            return []
