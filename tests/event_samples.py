"""One sample of each workspace event, for the tests that walk the whole catalog."""

from __future__ import annotations

from datetime import UTC, datetime

from loopgate.events import (
    Event,
    GroupDefined,
    GroupDeleted,
    IdentityLinked,
    IdentityUnlinked,
    InvitationAccepted,
    InvitationCreated,
    LinkCodeIssued,
    MemberAdded,
    MemberRemoved,
    MemberRoleChanged,
    WorkspaceCreated,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

TEAM_EVENTS: list[Event] = [
    WorkspaceCreated(workspace_id="w", name="w", created_at=T0),
    MemberAdded(workspace_id="w", user_id="u", role="approver", added_at=T0),
    MemberRoleChanged(workspace_id="w", user_id="u", role="admin", changed_at=T0),
    MemberRemoved(workspace_id="w", user_id="u", removed_at=T0),
    GroupDefined(workspace_id="w", name="g", members=("u",), defined_at=T0),
    GroupDeleted(workspace_id="w", name="g", deleted_at=T0),
    InvitationCreated(
        invitation_id="i",
        workspace_id="w",
        role="approver",
        token_hash="h",
        expires_at=T0,
        created_at=T0,
    ),
    InvitationAccepted(invitation_id="i", user_id="u", accepted_at=T0),
    LinkCodeIssued(
        code_hash="h",
        user_id="u",
        workspace_id="w",
        channel="telegram",
        expires_at=T0,
        issued_at=T0,
    ),
    IdentityLinked(
        user_id="u", workspace_id="w", channel="telegram", external_id="1", linked_at=T0
    ),
    IdentityUnlinked(
        user_id="u", workspace_id="w", channel="telegram", external_id="1", unlinked_at=T0
    ),
]
