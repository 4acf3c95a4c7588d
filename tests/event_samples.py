"""One sample of each workspace and policy event, for the tests that walk the whole catalog."""

from __future__ import annotations

from datetime import UTC, datetime

from loopgate.events import (
    Condition,
    Event,
    ExpiryWarned,
    GrantIssued,
    GrantRevoked,
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
    PolicySet,
    ReceiptRedeemed,
    RequestEscalated,
    Rule,
    RuleThen,
    SigningKeyAdded,
    VoteCast,
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

POLICY_EVENTS: list[Event] = [
    PolicySet(
        workspace_id="w",
        version=1,
        rules=(
            Rule(
                name="staging",
                when=(Condition(field="session_id", op="glob", value="staging-*"),),
                then=RuleThen(decide="approve"),
            ),
        ),
        set_at=T0,
    ),
]
"""Policy events outside a request's stream."""

REQUEST_POLICY_EVENTS: list[Event] = [
    VoteCast(
        request_id="r1", member="u", option="Approve", approves=True, channel="api", cast_at=T0
    ),
    ExpiryWarned(request_id="r1", expires_at=T0, warned_at=T0),
    RequestEscalated(request_id="r1", step=0, approvers=("group:leads",), escalated_at=T0),
]
"""The policy events of a request's stream (``request-r1``): its lifecycle."""

ACTION_EVENTS: list[Event] = [
    GrantIssued(
        grant_id="g1",
        workspace="w",
        session_id="s1",
        scope="exact",
        tool="deploy",
        fingerprint="0" * 64,
        request_id="r1",
        issued_by="u",
        issued_at=T0,
        expires_at=T0,
    ),
    GrantRevoked(grant_id="g1", revoked_by="u", revoked_at=T0),
]
"""The events of approvals bound to actions: grants and receipts (no request lifecycle)."""

RECEIPT_EVENTS: list[Event] = [
    SigningKeyAdded(
        kid="k1", public_key="11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", added_at=T0
    ),
    ReceiptRedeemed(
        jti="r1", request_id="r1", fingerprint="0" * 64, redeemed_by="apikey:a", redeemed_at=T0
    ),
]
"""The receipts' events: signing keys (``signing-keys``) and redemptions (``receipt-<jti>``)."""
