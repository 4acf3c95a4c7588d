"""What a request and a session look like to every reader.

:class:`RequestView` and :class:`SessionView` are the ``requests`` and
``sessions`` projections' rows as structs. :class:`PublicRequest` is a
request's public JSON (the ``/v1`` API's, and what MCP, webhooks, Telegram,
the console and the Python client read; :func:`request_json` gives it as a
dict), with the two words that say how it was decided:
``outcome`` (approved, rejected, answered, expired, cancelled) and
``decided_by`` (``{kind: human|policy|agent, id, channel}``), so a timeout is
never mistaken for a human's decision. One module, so every surface says the
same thing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, cast

import msgspec

from loopgate.events import (
    Action,
    Channel,
    EscalationStep,
    OnTimeout,
    Option,
    RecordedEvent,
    RequestCreated,
    RequestType,
    Vote,
)

FINAL_STATUSES = ("answered", "cancelled", "expired")


class SessionView(msgspec.Struct, frozen=True, kw_only=True):
    session_id: str
    client_id: str
    telegram_id: int | None
    tenant: str
    active: bool
    registered_at: datetime
    deactivated_at: datetime | None
    version: int
    callback_url: str | None = None


class Escalation(msgspec.Struct, frozen=True, kw_only=True):
    """An escalation step that fired: its ``approvers`` were added ``at`` then."""

    step: int
    approvers: tuple[str, ...]
    at: datetime


class RequestView(msgspec.Struct, frozen=True, kw_only=True):
    """A request as the ``requests`` projection has it."""

    request_id: str
    session_id: str
    client_id: str
    tenant: str
    message: str
    request_type: RequestType
    options: tuple[Option, ...]
    allow_text: bool
    metadata: dict[str, Any]
    timeout_seconds: int
    on_timeout: OnTimeout
    callback_url: str | None
    idempotency_key: str | None
    status: Literal["pending", "delivered", "answered", "cancelled", "expired"]
    approved: bool | None
    response_option: str | None
    response_text: str | None
    responder: str | None
    channel: str | None
    created_at: datetime
    expires_at: datetime | None
    delivered_at: datetime | None
    decided_at: datetime | None
    version: int
    approvers: tuple[str, ...] = ()
    routed_by: str | None = None
    quorum: int = 1
    veto: bool = True
    requester: str | None = None
    votes: tuple[Vote, ...] = ()
    """The votes cast (``VoteCast`` and the deciding one when there were several)."""
    approvals: int = 0
    """Approving votes among ``votes`` (what a queue shows without decoding them)."""
    policy_version: int | None = None
    rule: str | None = None
    decided_policy: str | None = None
    decision_reason: str | None = None
    remind_every_seconds: int | None = None
    warn_before_expiry_seconds: int | None = None
    escalation: tuple[EscalationStep, ...] = ()
    escalations: tuple[Escalation, ...] = ()
    reminders: int = 0
    warned_at: datetime | None = None
    action: Action | None = None
    fingerprint: str | None = None
    editable: bool = False
    args_schema: dict[str, Any] | None = None
    grantable: bool = False
    grant: str | None = None
    """The standing grant that approved it at creation."""
    decided_action: Action | None = None
    """The action approved (the approver's edit, when ``edited``); None unless approved."""
    decided_fingerprint: str | None = None
    edited: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def response(self) -> str | None:
        """The human's answer: the chosen option's label, else the free text."""
        return self.response_option if self.response_option is not None else self.response_text


def request_view(row: dict[str, Any]) -> RequestView:
    row = dict(row)
    row["options"] = msgspec.json.decode(row["options"], type=tuple[Option, ...])
    row["metadata"] = msgspec.json.decode(row["metadata"])
    row["approvers"] = msgspec.json.decode(row["approvers"], type=tuple[str, ...])
    for column in ("votes", "escalation", "escalations"):
        row[column] = msgspec.json.decode(row[column])
    for column in ("action", "args_schema", "decided_action"):
        if row[column] is not None:
            row[column] = msgspec.json.decode(row[column])
    row["grant"] = row.pop("grant_id")
    return msgspec.convert(row, RequestView, strict=False)


def new_request_view(record: RecordedEvent) -> RequestView:
    """The view of a request just created, from its event: no read-back needed."""
    created = record.event
    assert isinstance(created, RequestCreated)
    return RequestView(
        **msgspec.structs.asdict(created),
        tenant=record.meta.tenant,
        status="pending",
        approved=None,
        response_option=None,
        response_text=None,
        responder=None,
        channel=None,
        delivered_at=None,
        decided_at=None,
        version=record.version,
    )


Outcome = Literal["approved", "rejected", "answered", "expired", "cancelled"]


def outcome_of(view: RequestView) -> Outcome | None:
    match view.status:
        case "answered" if view.response_option is None:
            return "answered"
        case "answered":
            return "approved" if view.approved else "rejected"
        case "expired" | "cancelled":
            return view.status
        case _:
            return None


class DecidedBy(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Who or what decided: a human (``id`` the responder; with a quorum, the
    one whose vote decided), a policy (a rule at creation, ``<rule>@v<version>``,
    or a timeout, ``on_timeout:<what>``) or the agent that cancelled."""

    kind: Literal["human", "policy", "agent"]
    id: str | None
    channel: str | None
    routed_by: str | None = None
    """For a human: the request's approver selector they matched (``group:finance``)."""
    reason: str | None = None
    """For a policy rule: the reason it gave."""


class PublicVote(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One approver's vote: ``member`` is a user id, or ``telegram:<id>`` for an outsider."""

    member: str
    option: str | None = None
    text: str | None = None
    approves: bool
    channel: str
    at: str
    routed_by: str | None = None


class AppliedPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """The workspace policy in force when the request was made, and the rule that matched."""

    version: int
    rule: str | None
    """None: no rule matched, the request is as the agent asked."""


class PublicEscalation(msgspec.Struct, frozen=True, kw_only=True):
    step: int
    approvers: list[str]
    at: str


class PublicRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A request as the ``/v1`` API, MCP, webhooks and the Python client show it."""

    request_id: str
    session_id: str
    client_id: str
    message: str
    request_type: RequestType
    options: list[Option]
    allow_text: bool
    metadata: dict[str, Any]
    timeout_seconds: int
    on_timeout: OnTimeout
    callback_url: str | None
    approvers: list[str]
    status: Literal["pending", "delivered", "answered", "cancelled", "expired"]
    completed: bool
    approved: bool | None
    response: str | None
    outcome: Outcome | None
    decided_by: DecidedBy | None
    created_at: str
    expires_at: str | None
    delivered_at: str | None
    decided_at: str | None
    quorum: int
    veto: bool
    approvals: int
    votes: list[PublicVote]
    policy: AppliedPolicy | None
    escalation: list[EscalationStep]
    escalations: list[PublicEscalation]
    remind_every_seconds: int | None
    warn_before_expiry_seconds: int | None
    action: Action | None = None
    """The exact call asked for, if any; ``fingerprint`` is its SHA-256 (RFC 8785 JSON)."""
    fingerprint: str | None = None
    editable: bool = False
    args_schema: dict[str, Any] | None = None
    grantable: bool = False
    grant: str | None = None
    """The standing grant that approved it at creation."""
    decided_action: Action | None = None
    """The action approved: ``action`` itself, or the approver's edit when ``edited``."""
    decided_fingerprint: str | None = None
    edited: bool = False
    receipt: str | None = None
    """The signed receipt of an approved action (a compact JWS), for readers of the request;
    webhook payloads and exports never carry it."""


class RoutedMember(msgspec.Struct, frozen=True, kw_only=True):
    """A member a request's approvers name, as the workspace is now."""

    user_id: str
    username: str
    role: str


class RoutedRequest(PublicRequest, frozen=True, kw_only=True):
    """A request with its approvers resolved (``GET /v1/requests/{id}``).

    ``approvers`` are the selectors in force (a request made before routing
    shows its defaults); ``routed_to`` the members they name now. A bare
    ``telegram:<id>`` of nobody's linked account names an outside operator, in
    ``approvers`` only.
    """

    routed_to: list[RoutedMember]


class PublicSession(msgspec.Struct, frozen=True, kw_only=True):
    """A session as the ``/v1`` API shows it."""

    session_id: str
    client_id: str
    telegram_id: int | None
    callback_url: str | None
    active: bool
    registered_at: str
    deactivated_at: str | None


def decided_by(view: RequestView) -> DecidedBy | None:
    match view.status:
        case "answered" if view.decided_policy is not None:
            return DecidedBy(
                kind="policy", id=view.decided_policy, channel="system", reason=view.decision_reason
            )
        case "answered":
            return DecidedBy(
                kind="human", id=view.responder, channel=view.channel, routed_by=view.routed_by
            )
        case "expired":
            return DecidedBy(kind="policy", id=f"on_timeout:{view.on_timeout}", channel="system")
        case "cancelled":
            return DecidedBy(kind="agent", id=view.responder, channel="api")
        case _:
            return None


def public_request(view: RequestView, receipt: str | None = None) -> PublicRequest:
    """``view`` as the API shows it; ``receipt`` is the web layer's (it holds the signing keys)."""
    votes = votes_of(view)
    return PublicRequest(
        request_id=view.request_id,
        session_id=view.session_id,
        client_id=view.client_id,
        message=view.message,
        request_type=view.request_type,
        options=list(view.options),
        allow_text=view.allow_text,
        metadata=view.metadata,
        timeout_seconds=view.timeout_seconds,
        on_timeout=view.on_timeout,
        callback_url=view.callback_url,
        approvers=list(view.approvers),
        status=view.status,
        completed=view.final,
        approved=view.approved,
        response=view.response,
        outcome=outcome_of(view),
        decided_by=decided_by(view),
        created_at=view.created_at.isoformat(),
        expires_at=_iso(view.expires_at),
        delivered_at=_iso(view.delivered_at),
        decided_at=_iso(view.decided_at),
        quorum=view.quorum,
        veto=view.veto,
        approvals=sum(v.approves for v in votes),
        votes=[
            PublicVote(
                member=v.member,
                option=v.option,
                text=v.text,
                approves=v.approves,
                channel=v.channel,
                at=v.at.isoformat(),
                routed_by=v.routed_by,
            )
            for v in votes
        ],
        policy=(
            AppliedPolicy(version=view.policy_version, rule=view.rule)
            if view.policy_version is not None
            else None
        ),
        escalation=list(view.escalation),
        escalations=[
            PublicEscalation(step=e.step, approvers=list(e.approvers), at=e.at.isoformat())
            for e in view.escalations
        ],
        remind_every_seconds=view.remind_every_seconds,
        warn_before_expiry_seconds=view.warn_before_expiry_seconds,
        action=view.action,
        fingerprint=view.fingerprint,
        editable=view.editable,
        args_schema=view.args_schema,
        grantable=view.grantable,
        grant=view.grant,
        decided_action=view.decided_action,
        decided_fingerprint=view.decided_fingerprint,
        edited=view.edited,
        receipt=receipt,
    )


def votes_of(view: RequestView) -> tuple[Vote, ...]:
    """The request's votes; a human's lone answer is one vote though the log holds none."""
    if view.votes or view.status != "answered" or view.decided_policy is not None:
        return view.votes
    assert view.responder is not None and view.decided_at is not None
    return (
        Vote(
            member=view.responder,
            option=view.response_option,
            text=view.response_text,
            approves=bool(view.approved),
            channel=cast(Channel, view.channel),
            at=view.decided_at,
            routed_by=view.routed_by,
        ),
    )


def public_session(view: SessionView) -> PublicSession:
    return PublicSession(
        session_id=view.session_id,
        client_id=view.client_id,
        telegram_id=view.telegram_id,
        callback_url=view.callback_url,
        active=view.active,
        registered_at=view.registered_at.isoformat(),
        deactivated_at=_iso(view.deactivated_at),
    )


def request_json(view: RequestView) -> dict[str, Any]:
    """:class:`PublicRequest` as plain JSON values, for readers that want a dict."""
    reply: dict[str, Any] = msgspec.to_builtins(public_request(view))
    return reply


def session_json(view: SessionView) -> dict[str, Any]:
    reply: dict[str, Any] = msgspec.to_builtins(public_session(view))
    return reply


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
