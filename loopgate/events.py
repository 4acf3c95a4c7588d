"""The event catalog: every state change Loopgate knows, as a frozen struct.

Events are facts, named in the past tense and stored under a stable tag
(``"request.created"``), never under a Python import path, so a class may be
renamed or moved without rewriting the log. The docstring of each event is its
reference entry.

Each stored event also carries :class:`Meta` (who did it, for which tenant,
under which HTTP request) and lives in one stream:

* ``session-<tenant>/<id>`` — :class:`SessionRegistered`, :class:`SessionDeactivated`
  (session ids are per tenant; logs from before that name it ``session-<id>``)
* ``request-<id>`` — :class:`RequestCreated` … :class:`RequestExpired`,
  :class:`DeliveryFailed`, :class:`AnswerRefused`, :class:`WebhookDelivered`,
  :class:`WebhookFailed`
* ``user-<id>`` — :class:`UserRegistered`, :class:`UserLoggedIn`, :class:`LoginFailed`
* ``apikey-<id>`` — :class:`ApiKeyCreated`, :class:`ApiKeyRevoked`
* ``console-<id>`` — :class:`ConsoleSignedIn`, :class:`ConsoleSignedOut`
* ``tenant-<tenant>`` — :class:`WebhookSecretRotated`
* ``user-<id>`` also — :class:`WorkspaceCreated` and :class:`MemberAdded` with the
  registration, :class:`IdentityUnlinked`
* ``workspace-<id>`` — :class:`MemberRoleChanged`, :class:`MemberRemoved`,
  :class:`GroupDefined`, :class:`GroupDeleted`
* ``invitation-<id>`` — :class:`InvitationCreated`, :class:`InvitationAccepted`
* ``linkcode-<digest>`` — :class:`LinkCodeIssued`, :class:`IdentityLinked`
* ``policy-<workspace>`` — :class:`PolicySet`
* ``request-<id>`` also — :class:`VoteCast`, :class:`ExpiryWarned`, :class:`RequestEscalated`
* ``signing-keys`` — :class:`SigningKeyAdded` (the receipts' public keys)
* ``receipt-<jti>`` — :class:`ReceiptRedeemed` (at most one: the stream's version 1)

A tenant is a workspace: ``local`` (the default one) or a workspace id.

Changing an event's fields is a schema change of the log: add optional fields
with defaults, never remove or retype one.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

SECRET = msgspec.Meta(extra={"secret": True})
"""Marks a field whose value no reader may see (see :func:`secret_fields`)."""
Secret = Annotated[str, SECRET]
REDACTED = "[redacted]"

Channel = Literal["api", "telegram", "console", "mcp", "system", "slack", "email"]
RequestType = Literal["confirmation", "input", "choice"]
OnTimeout = Literal["reject", "approve", "none"]
Role = Literal["owner", "admin", "approver", "auditor"]
"""A member's role in a workspace; what each may do is :func:`loopgate.domain.teams.allows`."""
Decision = Literal["approve", "reject"]
GrantScope = Literal["exact", "tool"]
"""What a standing grant allows: the one action (by fingerprint) or any call of its tool."""
ConditionOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "glob", "exists"]
ApiKeyKind = Literal["agent", "operator"]
"""An ``agent`` key asks, reads, waits and cancels, never answers; an ``operator``
key also answers, as the user who made it."""


class Meta(msgspec.Struct, frozen=True, kw_only=True):
    """Who caused an event and in which context.

    ``actor`` is a user id, an API key id (``apikey:<id>``), a Telegram user
    (``telegram:<id>``) or ``system``; ``tenant`` is the workspace: ``local``
    (the default one, where the open quick-start mode's requests land) or a
    workspace id. ``correlation_id`` is the HTTP request id that led to the
    event; ``causation_id`` the id of the event or command that caused it,
    when there is one.
    """

    actor: str = "system"
    tenant: str = "local"
    correlation_id: str | None = None
    causation_id: str | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event; subclasses set ``tag=`` to their stable type name."""


class Option(msgspec.Struct, frozen=True, kw_only=True):
    """An answer button. ``approves`` is None when it is inferred from the label."""

    label: str
    approves: bool | None = None


# --- sessions ---------------------------------------------------------------


class SessionRegistered(Event, frozen=True, kw_only=True, tag="session.registered"):
    """An agent session was registered, optionally bound to a Telegram operator.

    ``callback_url`` is the webhook of its requests that name none of their own.
    """

    session_id: str
    client_id: str
    telegram_id: int | None = None
    callback_url: str | None = None
    registered_at: datetime


class SessionDeactivated(Event, frozen=True, kw_only=True, tag="session.deactivated"):
    """A session stopped accepting new requests; pending ones are untouched."""

    session_id: str
    deactivated_at: datetime


# --- policies ---------------------------------------------------------------


class EscalationStep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``after_seconds`` from creation, ``approvers`` are added to the routing and notified."""

    after_seconds: int
    approvers: tuple[str, ...]


class Condition(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One test of a rule: ``field`` (``session_id``, ``client_id``, ``request_type``,
    ``action.tool`` or ``metadata.<path>``) ``op`` ``value``; ``exists`` takes no value."""

    field: str
    op: ConditionOp
    value: Any = None


class RuleThen(
    msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, forbid_unknown_fields=True
):
    """What a matching rule does: tighten the request's requirements, or ``decide`` at once.

    A requirement only ever makes a request stricter than the agent asked
    (:func:`loopgate.domain.policy.tighten`); ``decide`` excludes every
    requirement and may carry a ``reason``.
    """

    approvers: tuple[str, ...] | None = None
    quorum: int | None = None
    veto: bool | None = None
    timeout_seconds: int | None = None
    on_timeout: OnTimeout | None = None
    escalation: tuple[EscalationStep, ...] | None = None
    remind_every_seconds: int | None = None
    warn_before_expiry_seconds: int | None = None
    grantable: bool | None = None
    """Whether approvers may grant a matching request's action for a while (True or
    False whatever the agent asked; a request without an action is never grantable)."""
    decide: Decision | None = None
    reason: str | None = None


class Rule(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named rule: when every condition holds, ``then`` applies (the first match wins)."""

    name: str
    when: tuple[Condition, ...] = ()
    then: RuleThen


class PolicySet(Event, frozen=True, kw_only=True, tag="policy.set"):
    """A workspace's ordered rules were replaced as a whole (stream ``policy-<workspace>``).

    ``version`` counts from 1; a request records the version it was decided
    under, so a later policy never changes how an old request reads.
    """

    workspace_id: str
    version: int
    rules: tuple[Rule, ...]
    set_at: datetime


# --- requests ---------------------------------------------------------------


class Action(msgspec.Struct, frozen=True, kw_only=True):
    """The exact call a request asks to make: a tool and its arguments.

    Its fingerprint (:func:`loopgate.domain.action.fingerprint`) is what an
    approval, a receipt and a grant are bound to.
    """

    tool: str
    args: dict[str, Any] = msgspec.field(default_factory=dict)


class Vote(msgspec.Struct, frozen=True, kw_only=True):
    """One approver's answer to a request (see :class:`VoteCast`)."""

    member: str
    option: str | None = None
    text: str | None = None
    approves: bool
    channel: Channel
    at: datetime
    routed_by: str | None = None


class RequestCreated(Event, frozen=True, kw_only=True, tag="request.created"):
    """An agent asked a human something.

    ``expires_at`` is ``created_at + timeout_seconds``, or None when the
    request never times out (``timeout_seconds == 0``).
    """

    request_id: str
    session_id: str
    client_id: str
    message: str
    request_type: RequestType
    options: tuple[Option, ...] = ()
    allow_text: bool = False
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    timeout_seconds: int
    on_timeout: OnTimeout = "reject"
    callback_url: str | None = None
    idempotency_key: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    approvers: tuple[str, ...] = ()
    """Who may answer: ``user:<name>``, ``group:<name>``, ``role:<role>``, ``telegram:<id>``.

    Resolved against the workspace's members when someone answers, not now, so
    a member who joins later can answer. Empty in logs written before routing:
    the session's Telegram operator, else ``role:approver``
    (:func:`loopgate.domain.teams.default_approvers`).
    """
    quorum: int = 1
    """Distinct members whose approving votes approve the request."""
    veto: bool = True
    """True: the first rejecting vote rejects. False: rejected once ``quorum``
    approvals can no longer be reached."""
    requester: str | None = None
    """The member (user id) who asked, through their key or the console: they never vote on it."""
    remind_every_seconds: int | None = None
    warn_before_expiry_seconds: int | None = None
    escalation: tuple[EscalationStep, ...] = ()
    policy_version: int | None = None
    """The workspace policy's version in force at creation (None: it had none)."""
    rule: str | None = None
    """The name of the policy rule that applied, if one matched."""
    action: Action | None = None
    fingerprint: str | None = None
    """The lowercase hex SHA-256 of ``action`` in RFC 8785 canonical JSON."""
    editable: bool = False
    """An approver may change ``action.args`` before approving."""
    args_schema: dict[str, Any] | None = None
    """A JSON Schema edited args must satisfy (it implies ``editable``)."""
    grantable: bool = False
    """An approver may approve and allow matching actions of the session for a while."""
    grant: str | None = None
    """The standing grant that approved this request at creation."""


class RequestDelivered(Event, frozen=True, kw_only=True, tag="request.delivered"):
    """The question reached an approver channel (a Telegram message, a Slack message, a mail).

    ``external_message_id`` is the message's id there (Telegram's message id,
    Slack's ``ts``, the mail's Message-ID). On Telegram ``chat_id`` is the
    chat; elsewhere ``address`` is whom it was delivered to, as the routing
    named them (a Slack user id or ``#channel``, an email address), and
    ``conversation`` where the message lives when that differs (the Slack
    channel id an edit needs). ``routed_by`` is the approvers selector the
    delivery serves when it is not a member's own linked account
    (``slack:#ops``). ``shown_text`` and ``shown_options`` are what the
    approver saw, as sent (the message's text, the buttons' labels): the
    evidence of an audit.
    """

    request_id: str
    channel: Channel
    external_message_id: str | None = None
    chat_id: int | None = None
    address: str | None = None
    conversation: str | None = None
    routed_by: str | None = None
    shown_text: str | None = None
    shown_options: tuple[str, ...] = ()
    delivered_at: datetime

    @property
    def target(self) -> str | None:
        """Whom it was delivered to, as text on every channel (a Telegram chat id too)."""
        if self.address is not None:
            return self.address
        return None if self.chat_id is None else str(self.chat_id)


class DeliveryFailed(Event, frozen=True, kw_only=True, tag="request.delivery_failed"):
    """A channel gave up showing the question to its operator after ``attempts`` tries.

    The request stays pending: it can still be answered elsewhere, or expire.
    On Telegram, ``chat_id`` is the chat given up on (a request may go to
    several); None in logs written before routing, when there was one chat.
    Elsewhere ``address`` is whom it was for (as ``RequestDelivered``'s).
    """

    request_id: str
    channel: Channel
    error: str
    attempts: int
    failed_at: datetime
    chat_id: int | None = None
    address: str | None = None

    @property
    def target(self) -> str | None:
        """Whom it was for, as text on every channel; None: before routing, the only chat."""
        if self.address is not None:
            return self.address
        return None if self.chat_id is None else str(self.chat_id)


class AnswerRefused(Event, frozen=True, kw_only=True, tag="request.answer_refused"):
    """Someone not allowed to answer tried to; nothing was decided.

    ``reason`` says why: someone the request is not routed to
    (``not_an_approver``, e.g. a Telegram account that is neither linked to a
    routed member nor the session's operator), a member whose role never
    answers (``role_cannot_answer``), or an agent API key
    (``agent_cannot_answer``; ``responder`` is then ``apikey:<id>``). Logs from
    before routing hold a sentence instead of a code.
    """

    request_id: str
    responder: str
    channel: Channel
    reason: str
    refused_at: datetime


class ReminderSent(Event, frozen=True, kw_only=True, tag="request.reminder_sent"):
    """The operator was reminded of a request still waiting for an answer.

    ``number`` counts a request's reminders from 1 (None in older logs): the
    reminder reactor sends reminder N once, however many processes run it.
    """

    request_id: str
    channel: Channel
    sent_at: datetime
    number: int | None = None


class ExpiryWarned(Event, frozen=True, kw_only=True, tag="request.expiry_warned"):
    """The approvers were warned that the request expires at ``expires_at``."""

    request_id: str
    expires_at: datetime
    warned_at: datetime


class RequestEscalated(Event, frozen=True, kw_only=True, tag="request.escalated"):
    """Escalation step ``step`` (from 0) fired: ``approvers`` now may answer too, and were told."""

    request_id: str
    step: int
    approvers: tuple[str, ...]
    escalated_at: datetime


class VoteCast(Event, frozen=True, kw_only=True, tag="request.vote_cast"):
    """An approver voted on a request that needs more than one approval.

    ``member`` is who voted (a user id, or ``telegram:<id>`` for an outside
    operator), whatever channel or linked account they used: each votes once.
    The vote that decides the request is not a ``VoteCast``: it is in the
    deciding :class:`ResponseReceived`'s ``votes``, with every earlier vote.
    """

    request_id: str
    member: str
    option: str | None = None
    text: str | None = None
    approves: bool
    channel: Channel
    routed_by: str | None = None
    cast_at: datetime

    @property
    def vote(self) -> Vote:
        """The vote this event records, as :class:`ResponseReceived` lists votes."""
        return Vote(
            member=self.member,
            option=self.option,
            text=self.text,
            approves=self.approves,
            channel=self.channel,
            at=self.cast_at,
            routed_by=self.routed_by,
        )


class ResponseReceived(Event, frozen=True, kw_only=True, tag="request.response_received"):
    """The decision: a human's answer (the vote that reached the quorum or vetoed),
    or a policy rule's. Exactly one per request, first wins.

    ``votes`` are every vote that decided it, this one last; empty when this
    answer was the only vote (and in logs from before quorums). ``policy``
    is ``<rule>@v<version>`` when a rule decided at creation; ``responder``
    is then ``policy:<rule>@v<version>`` and ``reason`` the rule's.
    """

    request_id: str
    responder: str
    option: str | None = None
    text: str | None = None
    approved: bool
    channel: Channel
    responded_at: datetime
    routed_by: str | None = None
    """The selector of the request's approvers the responder matched (None before routing)."""
    votes: tuple[Vote, ...] = ()
    policy: str | None = None
    reason: str | None = None
    action: Action | None = None
    """The action approved: the request's, or the approver's edit of it. None when
    rejected or when the request has no action."""
    fingerprint: str | None = None
    """``action``'s fingerprint: what the receipt binds."""
    edited: bool = False


class GrantIssued(Event, frozen=True, kw_only=True, tag="grant.issued"):
    """An approver approved and allowed matching actions of the session until ``expires_at``.

    On the request's stream, in the append of the approving ``ResponseReceived``.
    ``scope: exact`` matches the action by ``fingerprint``; ``scope: tool`` any
    call of ``tool``.
    """

    grant_id: str
    workspace: str
    session_id: str
    scope: GrantScope
    tool: str
    fingerprint: str | None = None
    request_id: str
    issued_by: str
    issued_at: datetime
    expires_at: datetime


class GrantRevoked(Event, frozen=True, kw_only=True, tag="grant.revoked"):
    """A standing grant stopped applying (on ``grant-<id>``, so revoked once)."""

    grant_id: str
    revoked_by: str
    revoked_at: datetime


class RequestCancelled(Event, frozen=True, kw_only=True, tag="request.cancelled"):
    """The request was withdrawn before anyone answered it."""

    request_id: str
    reason: str | None = None
    cancelled_at: datetime


class RequestExpired(Event, frozen=True, kw_only=True, tag="request.expired"):
    """Nobody answered in time; ``approved`` follows the request's ``on_timeout``."""

    request_id: str
    on_timeout: OnTimeout
    approved: bool | None = None
    expired_at: datetime


class WebhookDelivered(Event, frozen=True, kw_only=True, tag="request.webhook_delivered"):
    """The decision was POSTed to the request's ``callback_url``."""

    request_id: str
    url: str
    status_code: int
    attempt: int
    delivered_at: datetime


class WebhookFailed(Event, frozen=True, kw_only=True, tag="request.webhook_failed"):
    """One attempt to POST the decision to ``callback_url`` failed."""

    request_id: str
    url: str
    error: str
    attempt: int
    final: bool = False
    failed_at: datetime


class WebhookSecretRotated(Event, frozen=True, kw_only=True, tag="tenant.webhook_secret_rotated"):
    """A tenant's webhook signing secret was made (on first use) or replaced.

    The latest one signs every delivery from then on. The server must sign
    with it, so a hash would not do: ``sealed`` is the secret encrypted with
    the server key (AES-GCM, ``base64(nonce || ciphertext)``; see
    ``channels/webhooks/secrets.py``). ``secret`` is the clear secret of logs
    written before sealing; it is read, never written. Both are secret fields,
    so no export, stream or page shows either.
    """

    tenant: str
    secret: Annotated[str | None, SECRET] = None
    sealed: Annotated[str | None, SECRET] = None
    rotated_at: datetime


# --- receipts ---------------------------------------------------------------


class SigningKeyAdded(Event, frozen=True, kw_only=True, tag="signing_key.added"):
    """An Ed25519 key that signs receipts was added (the first mint, or a rotation).

    Only the public half is here (``public_key``: base64url of the raw 32
    bytes, as a JWK's ``x``). The private key is derived from the server key
    and ``kid`` whenever it is needed (``receipts/keys.py``) and never stored.
    A receipt is signed with the newest key added at or before its decision;
    older keys stay, so older receipts still verify.
    """

    kid: str
    public_key: str
    added_at: datetime


class ReceiptRedeemed(Event, frozen=True, kw_only=True, tag="receipt.redeemed"):
    """A receipt was used up by the tool it approves (``POST /v1/receipts/redeem``).

    Appended at version 0 of ``receipt-<jti>``, so a second redemption, in any
    process, conflicts. ``fingerprint`` is the action's, which matched the
    receipt's ``act``; ``redeemed_by`` the caller (an agent key, usually).
    """

    jti: str
    request_id: str
    fingerprint: str
    redeemed_by: str
    redeemed_at: datetime


# --- accounts ---------------------------------------------------------------


class UserRegistered(Event, frozen=True, kw_only=True, tag="user.registered"):
    """An operator account was created; ``password_hash`` is an argon2id hash."""

    user_id: str
    username: str
    email: str | None = None
    password_hash: Secret
    registered_at: datetime
    workspace_id: str | None = None
    """The workspace the user joined, by the :class:`MemberAdded` appended with this event.

    None in logs written before workspaces: then the user owns a workspace of
    their own whose id is the user id (the tenant they had), and no other event says so.
    """


class UserLoggedIn(Event, frozen=True, kw_only=True, tag="user.logged_in"):
    """A user authenticated; ``rehashed_password`` is set when the hash was upgraded."""

    user_id: str
    logged_in_at: datetime
    rehashed_password: Annotated[str | None, SECRET] = None
    address: str | None = None
    """The client address it came from; it clears that address's failures (all, when None)."""


class LoginFailed(Event, frozen=True, kw_only=True, tag="user.login_failed"):
    """A login named this user but failed; ``reason`` is ``"invalid_password"``.

    Failures throttle further logins from the same client ``address``: for this
    user, and (more loosely) for every user (:func:`loopgate.domain.account.login_retry_after`).
    Attempts refused by the throttle are not recorded, and a login from another
    address is not held back, so an attacker cannot lock the owner out. Logins
    naming an unknown username record nothing: there is no stream to attach them to.
    """

    user_id: str
    reason: str
    failed_at: datetime
    address: str | None = None


class ApiKeyCreated(Event, frozen=True, kw_only=True, tag="apikey.created"):
    """An API key was issued; only its SHA-256 is kept, the key is shown once.

    ``kind`` (:data:`ApiKeyKind`) says whether it may answer requests. Keys
    issued before kinds existed have none and are ``agent`` keys.
    """

    key_id: str
    user_id: str
    label: str
    key_hash: Secret
    prefix: str
    created_at: datetime
    expires_at: datetime | None = None
    kind: ApiKeyKind = "agent"


class ApiKeyRevoked(Event, frozen=True, kw_only=True, tag="apikey.revoked"):
    """An API key stopped working."""

    key_id: str
    revoked_at: datetime


# --- web console ------------------------------------------------------------


class ConsoleSignedIn(Event, frozen=True, kw_only=True, tag="console.signed_in"):
    """A user signed in to the web console from one browser.

    The session lasts until ``expires_at`` or :class:`ConsoleSignedOut`. Its
    ``session_id`` is not a secret (it is in the log and in exports): the
    browser's cookie carries it together with an HMAC only the server can make.
    """

    session_id: str
    user_id: str
    username: str
    signed_in_at: datetime
    expires_at: datetime


class ConsoleSignedOut(Event, frozen=True, kw_only=True, tag="console.signed_out"):
    """The user signed out of one console session: its cookie stops working at once."""

    session_id: str
    signed_out_at: datetime


# --- workspaces -------------------------------------------------------------


class WorkspaceCreated(Event, frozen=True, kw_only=True, tag="workspace.created"):
    """A workspace began: the tenant of its members' requests, sessions and keys.

    Appended with the :class:`UserRegistered` of its first owner, on that user's
    stream. A self-registered user's workspace has the user's id; ``local`` is
    the default workspace, where the open loopback mode's requests land.
    """

    workspace_id: str
    name: str
    created_at: datetime


class MemberAdded(Event, frozen=True, kw_only=True, tag="workspace.member_added"):
    """A user joined a workspace with a role (with the user's registration, on its stream)."""

    workspace_id: str
    user_id: str
    role: Role
    invitation_id: str | None = None
    added_at: datetime


class MemberRoleChanged(Event, frozen=True, kw_only=True, tag="workspace.member_role_changed"):
    """A member's role changed (on ``workspace-<id>``, so changes are serialised)."""

    workspace_id: str
    user_id: str
    role: Role
    changed_at: datetime


class MemberRemoved(Event, frozen=True, kw_only=True, tag="workspace.member_removed"):
    """A member left the workspace; their credentials stop acting in it."""

    workspace_id: str
    user_id: str
    removed_at: datetime


class GroupDefined(Event, frozen=True, kw_only=True, tag="workspace.group_defined"):
    """A named group of members (user ids) was set; a request may route to ``group:<name>``."""

    workspace_id: str
    name: str
    members: tuple[str, ...]
    defined_at: datetime


class GroupDeleted(Event, frozen=True, kw_only=True, tag="workspace.group_deleted"):
    workspace_id: str
    name: str
    deleted_at: datetime


class InvitationCreated(Event, frozen=True, kw_only=True, tag="invitation.created"):
    """A single-use link to join a workspace with a role; only the token's SHA-256 is kept."""

    invitation_id: str
    workspace_id: str
    role: Role
    token_hash: Secret
    expires_at: datetime
    created_at: datetime


class InvitationAccepted(Event, frozen=True, kw_only=True, tag="invitation.accepted"):
    """The invitation was used (by the new ``user_id``); it cannot be used again."""

    invitation_id: str
    user_id: str
    accepted_at: datetime


class LinkCodeIssued(Event, frozen=True, kw_only=True, tag="identity.link_code_issued"):
    """A member asked to link a channel account; the code (hashed here) works once, briefly."""

    code_hash: Secret
    user_id: str
    workspace_id: str
    channel: str
    expires_at: datetime
    issued_at: datetime


class IdentityLinked(Event, frozen=True, kw_only=True, tag="identity.linked"):
    """A channel account (a Telegram user id) now acts as this member.

    Appended on the link code's stream, which is what makes the code single use.
    """

    user_id: str
    workspace_id: str
    channel: str
    external_id: str
    display: str | None = None
    linked_at: datetime


class IdentityUnlinked(Event, frozen=True, kw_only=True, tag="identity.unlinked"):
    """A channel account no longer acts as the member (on ``user-<id>``)."""

    user_id: str
    workspace_id: str
    channel: str
    external_id: str
    unlinked_at: datetime


AnyEvent = (
    SessionRegistered
    | SessionDeactivated
    | RequestCreated
    | RequestDelivered
    | DeliveryFailed
    | AnswerRefused
    | ReminderSent
    | ExpiryWarned
    | RequestEscalated
    | VoteCast
    | ResponseReceived
    | RequestCancelled
    | RequestExpired
    | GrantIssued
    | GrantRevoked
    | WebhookDelivered
    | WebhookFailed
    | WebhookSecretRotated
    | SigningKeyAdded
    | ReceiptRedeemed
    | UserRegistered
    | UserLoggedIn
    | LoginFailed
    | ApiKeyCreated
    | ApiKeyRevoked
    | ConsoleSignedIn
    | ConsoleSignedOut
    | WorkspaceCreated
    | MemberAdded
    | MemberRoleChanged
    | MemberRemoved
    | GroupDefined
    | GroupDeleted
    | InvitationCreated
    | InvitationAccepted
    | LinkCodeIssued
    | IdentityLinked
    | IdentityUnlinked
    | PolicySet
)

EVENT_TYPES: dict[str, type[Event]] = {cls.__struct_config__.tag: cls for cls in AnyEvent.__args__}


def _secret_fields(cls: type[Event]) -> tuple[str, ...]:
    return tuple(
        field.name
        for field in msgspec.structs.fields(cls)
        if SECRET in getattr(field.type, "__metadata__", ())
    )


SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    tag: fields for tag, cls in EVENT_TYPES.items() if (fields := _secret_fields(cls))
}
"""The secret fields of each event type that has any, by tag, read off the ``SECRET`` marker."""


def secret_fields(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """The secret fields that ``data`` (an event of type ``type_``, decoded) holds a value in.

    The one place that says what is secret: the hash chain digests these
    (``store/codec.py``), and every reader of event data redacts them
    (:func:`redacted`).
    """
    return {name: data[name] for name in SECRET_FIELDS.get(type_, ()) if data.get(name) is not None}


def field_digest(value: Any) -> str:
    """The SHA-256 (hex) of a field value's canonical JSON: what stands in for a secret."""
    return hashlib.sha256(msgspec.json.encode(value, order="sorted")).hexdigest()


def redacted(type_: str, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every secret field that holds a value replaced by ``"[redacted]"``."""
    hidden = secret_fields(type_, data)
    return {k: REDACTED if k in hidden else v for k, v in data.items()} if hidden else data


def event_data(event: Event) -> dict[str, Any]:
    """An event's fields as JSON-ready builtins (no ``type``), its secrets redacted."""
    fields: dict[str, Any] = msgspec.to_builtins(event)
    tag = fields.pop("type")
    return redacted(tag, fields)


def event_type(event: Event) -> str:
    """The stable tag an event is stored under."""
    tag = type(event).__struct_config__.tag
    assert isinstance(tag, str)
    return tag


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as stored: its place in the log, its stream and its chain link."""

    position: int
    stream: str
    version: int
    event: Event
    meta: Meta
    recorded_at: datetime
    prev_hash: str
    hash: str

    @property
    def type(self) -> str:
        return event_type(self.event)
