"""The request decider: a question to a human, from creation to its outcome.

Stream ``request-<id>``. Lifecycle::

    NotCreated ─create─► Pending ─deliver─► Pending (delivered) ─┬─answer─► Answered
                           │                                     ├─cancel─► Cancelled
                           └──────────── (either) ───────────────┴─expire─► Expired

Answered, Cancelled and Expired are final. The rules a caller may lean on:

* **Votes decide.** Each answer is a vote. ``quorum`` distinct members'
  approving votes approve; a rejecting vote rejects at once (a veto), or, with
  ``veto`` off, once ``quorum`` approvals can no longer be reached. Votes short
  of a decision are :class:`VoteCast`; the deciding one is the
  :class:`ResponseReceived`, carrying every vote. A member votes once
  (``already_voted``).
* **The decision is final.** After it, a different answer is :class:`AlreadyDecided`;
  the same answer by the same responder again (a replayed Telegram update) is a
  no-op.
* **A policy may decide at creation.** A :class:`CreateRequest` with ``decision``
  records the :class:`RequestCreated` and the rule's :class:`ResponseReceived`
  in one append.
* **Reminders, warnings and escalations happen once.** Each is numbered (the
  Nth reminder, escalation step K); a repeat, an early one (``not_due``) or one
  for a decided request changes nothing.
* **The deadline is the deadline.** From ``expires_at`` on, answers, reminders
  and cancellations are refused with ``request_expired`` even before the expirer
  appended :class:`RequestExpired`, so the outcome depends on the clock, not on
  which writer was faster. Deliveries are still recorded: the message exists
  and has to be edited when the request expires.
* **Reactors never fail on a race they lost.** Expiring a final request,
  cancelling a cancelled one and recording a failed delivery of a decided one
  return ``[]``.
* **Refusals are recorded, not decided.** :class:`RefuseAnswer` records an
  :class:`AnswerRefused` in any state and changes nothing; whether the answerer
  may answer is the command handler's call (it needs the session).
* **The log is self-describing.** ``decide`` normalises the request before
  recording it: a ``confirmation`` without options gets
  :data:`DEFAULT_CONFIRMATION_OPTIONS`, an ``input`` always allows text. Readers
  of :class:`RequestCreated` never re-apply these defaults.

Cross-aggregate rules (the session must be active, the responder must be the
session's operator, ``metadata`` size, the idempotency-key lookup) belong to the
command handler, which sees more than one stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import reduce
from typing import Any, Literal, NoReturn, TypeAlias, assert_never

import msgspec

from loopgate.domain.action import MAX_ACTION_BYTES, action_size, check_args, check_schema
from loopgate.domain.action import fingerprint as fingerprint_of
from loopgate.domain.approval import approves, text_approves
from loopgate.errors import AlreadyDecided, Conflict, DomainError, NotFound, RequestClosed
from loopgate.events import (
    Action,
    AnswerRefused,
    Channel,
    Decision,
    DeliveryFailed,
    EscalationStep,
    Event,
    ExpiryWarned,
    GrantIssued,
    GrantScope,
    OnTimeout,
    Option,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestEscalated,
    RequestExpired,
    RequestType,
    ResponseReceived,
    Vote,
    VoteCast,
)

DEFAULT_CONFIRMATION_OPTIONS: tuple[Option, ...] = (
    Option(label="Approve", approves=True),
    Option(label="Reject", approves=False),
)

_TIMEOUT_APPROVES: dict[OnTimeout, bool | None] = {
    "approve": True,
    "reject": False,
    "none": None,
}

# --- state ------------------------------------------------------------------


class NotCreated(msgspec.Struct, frozen=True):
    """No event yet: the request does not exist."""


class Pending(msgspec.Struct, frozen=True, kw_only=True):
    """Waiting for a decision; ``delivered`` once some channel showed it to a human."""

    request: RequestCreated
    deliveries: tuple[RequestDelivered, ...] = ()
    reminders: int = 0
    votes: tuple[Vote, ...] = ()
    escalated: tuple[int, ...] = ()
    warned: bool = False

    @property
    def delivered(self) -> bool:
        return bool(self.deliveries)


class Answered(msgspec.Struct, frozen=True, kw_only=True):
    """A human decided; ``response.approved`` is the verdict."""

    request: RequestCreated
    deliveries: tuple[RequestDelivered, ...] = ()
    response: ResponseReceived


class Cancelled(msgspec.Struct, frozen=True, kw_only=True):
    """Withdrawn before anyone answered."""

    request: RequestCreated
    deliveries: tuple[RequestDelivered, ...] = ()
    cancellation: RequestCancelled


class Expired(msgspec.Struct, frozen=True, kw_only=True):
    """Nobody answered in time; ``expiry.approved`` follows ``on_timeout``."""

    request: RequestCreated
    deliveries: tuple[RequestDelivered, ...] = ()
    expiry: RequestExpired


State: TypeAlias = NotCreated | Pending | Answered | Cancelled | Expired
Final: TypeAlias = Answered | Cancelled | Expired
Status = Literal["not_created", "pending", "delivered", "answered", "cancelled", "expired"]

initial: State = NotCreated()


# --- commands ---------------------------------------------------------------


class CreateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Ask a human. ``timeout_seconds == 0`` means the request never expires."""

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
    approvers: tuple[str, ...] = ()
    quorum: int = 1
    veto: bool = True
    requester: str | None = None
    remind_every_seconds: int | None = None
    warn_before_expiry_seconds: int | None = None
    escalation: tuple[EscalationStep, ...] = ()
    policy_version: int | None = None
    rule: str | None = None
    decision: Decision | None = None
    """The matching rule decides at once (``rule`` and ``policy_version`` name it)."""
    reason: str | None = None
    action: Action | None = None
    editable: bool = False
    args_schema: dict[str, Any] | None = None
    grantable: bool = False
    grant: str | None = None
    """A standing grant of the session matches ``action``: it approves at once."""
    now: datetime


class MarkDelivered(msgspec.Struct, frozen=True, kw_only=True):
    """Record that a channel showed the request to a human."""

    request_id: str
    channel: Channel
    external_message_id: str | None = None
    chat_id: int | None = None
    address: str | None = None
    conversation: str | None = None
    routed_by: str | None = None
    shown_text: str | None = None
    shown_options: tuple[str, ...] = ()
    now: datetime


class RecordDeliveryFailure(msgspec.Struct, frozen=True, kw_only=True):
    """A channel gave up delivering the request after ``attempts`` tries."""

    request_id: str
    channel: Channel
    error: str
    attempts: int
    now: datetime
    chat_id: int | None = None
    address: str | None = None


class RefuseAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Record an answer attempt by someone not allowed to answer (the handler decided that)."""

    request_id: str
    responder: str
    channel: Channel
    reason: str
    now: datetime


class SendReminder(msgspec.Struct, frozen=True, kw_only=True):
    """Record a reminder about a request still waiting.

    ``number`` (from 1) is the reminder reactor's: reminder N is due
    ``N * remind_every_seconds`` after creation and recorded once.
    """

    request_id: str
    channel: Channel
    now: datetime
    number: int | None = None


class WarnExpiry(msgspec.Struct, frozen=True, kw_only=True):
    """Record that the approvers were warned of the coming expiry (once)."""

    request_id: str
    now: datetime


class EscalateRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Fire escalation step ``step`` (an index into ``RequestCreated.escalation``), once."""

    request_id: str
    step: int
    now: datetime


class AnswerRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A human's answer: exactly one of ``option`` (a label) or ``text``."""

    request_id: str
    responder: str
    option: str | None = None
    text: str | None = None
    channel: Channel
    now: datetime
    routed_by: str | None = None
    """The approver selector the responder matched (checked by the command layer)."""
    member: str | None = None
    """Who votes (a user id for a member on any channel); ``responder`` if None."""
    voters: int | None = None
    """How many may vote on it now, for ``veto: false`` (None: unknown, never unreachable)."""
    args: dict[str, Any] | None = None
    """The approver's edit of the action's args (an editable request, approving)."""
    grant: GrantAsk | None = None
    """Approve and allow matching actions of the session for ``grant.seconds``."""
    grant_id: str | None = None
    """The id the grant gets (the command layer's, so the decider stays pure)."""
    workspace: str | None = None
    """The request's workspace, which a grant is recorded in."""


class GrantAsk(msgspec.Struct, frozen=True, kw_only=True):
    """An approver's "approve and allow for a while": how long, and for what."""

    seconds: int
    scope: GrantScope = "exact"


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Withdraw a request nobody answered yet."""

    request_id: str
    reason: str | None = None
    now: datetime


class ExpireRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Close a request whose deadline passed (sent by the expirer)."""

    request_id: str
    now: datetime


Command: TypeAlias = (
    CreateRequest
    | MarkDelivered
    | RecordDeliveryFailure
    | SendReminder
    | WarnExpiry
    | EscalateRequest
    | AnswerRequest
    | RefuseAnswer
    | CancelRequest
    | ExpireRequest
)


# --- decider ----------------------------------------------------------------


def decide(command: Command, state: State) -> list[Event]:
    """The events ``command`` produces in ``state``; raises if it is not allowed.

    Every command but :class:`CreateRequest` on a request that does not exist
    raises :class:`NotFound` (``request_not_found``).
    """
    if isinstance(command, CreateRequest):
        return _create(command, state)
    if isinstance(state, NotCreated):
        raise NotFound(f"request {command.request_id!r} not found", code="request_not_found")
    match command:
        case MarkDelivered():
            return _deliver(command, state)
        case RecordDeliveryFailure():
            return _delivery_failed(command, state)
        case RefuseAnswer():
            return [
                AnswerRefused(
                    request_id=command.request_id,
                    responder=command.responder,
                    channel=command.channel,
                    reason=command.reason,
                    refused_at=command.now,
                )
            ]
        case SendReminder():
            return _remind(command, state)
        case WarnExpiry():
            return _warn(command, state)
        case EscalateRequest():
            return _escalate(command, state)
        case AnswerRequest():
            return _answer(command, state)
        case CancelRequest():
            return _cancel(command, state)
        case ExpireRequest():
            return _expire(command, state)
        case _:
            assert_never(command)


def _create(command: CreateRequest, state: State) -> list[Event]:
    if not isinstance(state, NotCreated):
        raise Conflict(f"request {command.request_id!r} already exists", code="request_exists")
    if not command.message.strip():
        raise DomainError("message must not be empty", code="empty_message")
    if command.timeout_seconds < 0:
        raise DomainError("timeout_seconds must be 0 (never) or more", code="invalid_timeout")
    _check_requirements(command)
    options = command.options
    if command.request_type == "confirmation" and not options:
        options = DEFAULT_CONFIRMATION_OPTIONS
    if command.request_type == "choice" and not options:
        raise DomainError("a choice needs at least one option", code="options_required")
    _check_labels(options)
    created = RequestCreated(
        request_id=command.request_id,
        session_id=command.session_id,
        client_id=command.client_id,
        message=command.message,
        request_type=command.request_type,
        options=options,
        allow_text=command.allow_text or command.request_type == "input",
        metadata=command.metadata,
        timeout_seconds=command.timeout_seconds,
        on_timeout=command.on_timeout,
        callback_url=command.callback_url,
        idempotency_key=command.idempotency_key,
        approvers=command.approvers,
        quorum=command.quorum,
        veto=command.veto,
        requester=command.requester,
        remind_every_seconds=command.remind_every_seconds,
        warn_before_expiry_seconds=command.warn_before_expiry_seconds,
        escalation=command.escalation,
        policy_version=command.policy_version,
        rule=command.rule,
        action=command.action,
        fingerprint=None if command.action is None else fingerprint_of(command.action),
        editable=command.editable or command.args_schema is not None,
        args_schema=command.args_schema,
        grantable=command.grantable,
        grant=command.grant,
        created_at=command.now,
        expires_at=(
            command.now + timedelta(seconds=command.timeout_seconds)
            if command.timeout_seconds
            else None
        ),
    )
    if command.grant is not None:
        return [created, _policy_decision(created, "approve", None, f"grant:{command.grant}")]
    if command.decision is None:
        return [created]
    assert created.rule is not None and created.policy_version is not None
    rule = policy_id(created.rule, created.policy_version)
    return [created, _policy_decision(created, command.decision, command.reason, rule)]


def _check_requirements(command: CreateRequest) -> None:
    if command.quorum < 1:
        raise DomainError("quorum must be 1 or more", code="invalid_quorum")
    for name, seconds in (
        ("remind_every_seconds", command.remind_every_seconds),
        ("warn_before_expiry_seconds", command.warn_before_expiry_seconds),
    ):
        if seconds is not None and seconds < 1:
            raise DomainError(f"{name} must be 1 or more", code="invalid_schedule")
    for step in command.escalation:
        if step.after_seconds < 1 or not step.approvers:
            raise DomainError(
                "an escalation step needs after_seconds >= 1 and approvers",
                code="invalid_escalation",
            )
    if command.decision is not None and (command.rule is None or command.policy_version is None):
        raise DomainError("only a policy rule decides at creation", code="invalid_decision")
    _check_action(command)


def _check_action(command: CreateRequest) -> None:
    if command.action is None:
        if command.editable or command.grantable or command.args_schema is not None:
            raise DomainError(
                "editable, args_schema and grantable need an action to apply to", code="no_action"
            )
        return
    if not command.action.tool.strip():
        raise DomainError("action.tool must not be empty", code="invalid_action")
    if action_size(command.action) > MAX_ACTION_BYTES:
        raise DomainError(
            f"action must be at most {MAX_ACTION_BYTES} bytes of JSON", code="action_too_large"
        )
    if command.args_schema is not None:
        check_schema(command.args_schema)
    if command.grant is not None and command.quorum > 1:
        raise DomainError("a grant never approves a quorum request", code="invalid_decision")


def policy_id(rule: str, version: int) -> str:
    """How a rule is named in ``decided_by``: ``<rule>@v<version>``."""
    return f"{rule}@v{version}"


def _policy_decision(
    created: RequestCreated, decision: Decision, reason: str | None, policy: str
) -> Event:
    """The decision of a rule (``<rule>@v<version>``) or a grant (``grant:<id>``) at creation."""
    approved = decision == "approve"
    label = next((o.label for o in created.options if approves(o) == approved), None)
    return ResponseReceived(
        request_id=created.request_id,
        responder=f"policy:{policy}",
        option=label,
        text=None if label is not None else (reason or decision),
        approved=approved,
        channel="system",
        responded_at=created.created_at,
        policy=policy,
        reason=reason,
        action=created.action if approved else None,
        fingerprint=created.fingerprint if approved else None,
    )


def _check_labels(options: tuple[Option, ...]) -> None:
    # Labels that differ only in case or spacing look the same on a button, so
    # they count as duplicates even though answers match labels exactly.
    seen: set[str] = set()
    for option in options:
        key = option.label.strip().casefold()
        if not key:
            raise DomainError("option labels must not be empty", code="empty_option")
        if key in seen:
            raise DomainError(f"duplicate option {option.label!r}", code="duplicate_option")
        seen.add(key)


def _deliver(command: MarkDelivered, state: Pending | Final) -> list[Event]:
    match state:
        case Pending():
            if any(
                # Message ids count per chat: the same id in two chats is two messages.
                (d.channel, d.chat_id, d.address, d.external_message_id)
                == (command.channel, command.chat_id, command.address, command.external_message_id)
                for d in state.deliveries
            ):
                return []
            return [
                RequestDelivered(
                    request_id=command.request_id,
                    channel=command.channel,
                    external_message_id=command.external_message_id,
                    chat_id=command.chat_id,
                    address=command.address,
                    conversation=command.conversation,
                    routed_by=command.routed_by,
                    shown_text=command.shown_text,
                    shown_options=command.shown_options,
                    delivered_at=command.now,
                )
            ]
        case Answered() | Cancelled() | Expired():
            _refuse_final(state)
        case _:
            assert_never(state)


def _delivery_failed(command: RecordDeliveryFailure, state: Pending | Final) -> list[Event]:
    match state:
        case Pending():
            return [
                DeliveryFailed(
                    request_id=command.request_id,
                    channel=command.channel,
                    error=command.error,
                    attempts=command.attempts,
                    failed_at=command.now,
                    chat_id=command.chat_id,
                    address=command.address,
                )
            ]
        case Answered() | Cancelled() | Expired():
            return []  # decided meanwhile: nobody needs the message any more
        case _:
            assert_never(state)


def _remind(command: SendReminder, state: Pending | Final) -> list[Event]:
    match state:
        case Pending():
            _refuse_if_due(state, command.now)
            number = command.number
            if number is not None:
                if number <= state.reminders:
                    return []
                every = state.request.remind_every_seconds
                if every is None:
                    raise DomainError("this request has no reminders", code="not_due")
                _refuse_early(state.request.created_at + timedelta(seconds=number * every), command)
            return [
                ReminderSent(
                    request_id=command.request_id,
                    channel=command.channel,
                    sent_at=command.now,
                    number=number,
                )
            ]
        case Answered() | Cancelled() | Expired() if command.number is not None:
            return []
        case Answered() | Cancelled() | Expired():
            _refuse_final(state)
        case _:
            assert_never(state)


def _warn(command: WarnExpiry, state: Pending | Final) -> list[Event]:
    match state:
        case Pending(warned=True):
            return []
        case Pending():
            _refuse_if_due(state, command.now)
            request = state.request
            before = request.warn_before_expiry_seconds
            if request.expires_at is None or before is None:
                raise DomainError("this request has no expiry warning", code="not_due")
            _refuse_early(request.expires_at - timedelta(seconds=before), command)
            return [
                ExpiryWarned(
                    request_id=command.request_id,
                    expires_at=request.expires_at,
                    warned_at=command.now,
                )
            ]
        case Answered() | Cancelled() | Expired():
            return []
        case _:
            assert_never(state)


def _escalate(command: EscalateRequest, state: Pending | Final) -> list[Event]:
    match state:
        case Pending() if command.step in state.escalated:
            return []
        case Pending():
            _refuse_if_due(state, command.now)
            request = state.request
            if not 0 <= command.step < len(request.escalation):
                raise DomainError(f"no escalation step {command.step}", code="unknown_step")
            step = request.escalation[command.step]
            _refuse_early(request.created_at + timedelta(seconds=step.after_seconds), command)
            return [
                RequestEscalated(
                    request_id=command.request_id,
                    step=command.step,
                    approvers=step.approvers,
                    escalated_at=command.now,
                )
            ]
        case Answered() | Cancelled() | Expired():
            return []
        case _:
            assert_never(state)


def _refuse_early(due: datetime, command: SendReminder | WarnExpiry | EscalateRequest) -> None:
    if command.now < due:
        raise DomainError(f"due at {due.isoformat()}", code="not_due")


def _answer(command: AnswerRequest, state: Pending | Final) -> list[Event]:
    if (command.option is None) == (command.text is None):
        raise DomainError("answer with exactly one of option or text", code="invalid_answer")
    if command.text is not None and not command.text.strip():
        raise DomainError("a text answer must not be empty", code="empty_answer")
    match state:
        case Answered(response=response) if _same_answer(response, command):
            return []
        case Answered() | Cancelled() | Expired():
            _refuse_final(state)
        case Pending():
            _refuse_if_due(state, command.now)
            _check_edit_and_grant(command, state.request)
            return _vote(command, state)
        case _:
            assert_never(state)


def _same_answer(response: ResponseReceived, command: AnswerRequest) -> bool:
    """Whether ``command`` repeats the decision (a replayed update, a retried POST)."""
    edit = response.action.args if response.edited and response.action is not None else None
    return (
        response.responder == command.responder
        and response.option == command.option
        and response.text == command.text
        and (command.args is None or command.args == edit)
    )


def _check_edit_and_grant(command: AnswerRequest, request: RequestCreated) -> None:
    """Refuse an edit or a grant the request does not allow, before any vote is counted."""
    if command.args is None and command.grant is None:
        return
    if request.action is None:
        raise DomainError("this request has no action to edit or grant", code="no_action")
    if command.args is not None:
        if not request.editable:
            raise DomainError("this request's action is not editable", code="not_editable")
        if request.quorum > 1:
            raise DomainError(
                "a quorum request's action cannot be edited: the other approvers "
                "voted on it as asked",
                code="edit_needs_single_approver",
            )
        check_args(request.args_schema, command.args)
        if action_size(Action(tool=request.action.tool, args=command.args)) > MAX_ACTION_BYTES:
            raise DomainError(
                f"the edited action must be at most {MAX_ACTION_BYTES} bytes of JSON",
                code="action_too_large",
            )
    if command.grant is not None:
        if not request.grantable:
            raise DomainError("this request does not allow standing grants", code="not_grantable")
        if request.quorum > 1:
            raise DomainError(
                "a quorum request is never granted: each one needs its votes",
                code="grant_needs_single_approver",
            )
        if command.grant_id is None or command.workspace is None:
            raise DomainError("a grant needs an id and a workspace", code="invalid_grant")


def _vote(command: AnswerRequest, state: Pending) -> list[Event]:
    member = command.member or command.responder
    if any(v.member == member for v in state.votes):
        raise Conflict(f"{member} already voted on this request", code="already_voted")
    vote = Vote(
        member=member,
        option=command.option,
        text=command.text,
        approves=_approved(state.request, command),
        channel=command.channel,
        at=command.now,
        routed_by=command.routed_by,
    )
    votes = (*state.votes, vote)
    request = state.request
    approvals = sum(v.approves for v in votes)
    rejections = len(votes) - approvals
    unreachable = command.voters is not None and command.voters - rejections < request.quorum
    if not vote.approves and (command.args is not None or command.grant is not None):
        what = "edited args" if command.args is not None else "a grant"
        raise DomainError(
            f"{what} go with an approving answer only",
            code="edit_needs_approval" if command.args is not None else "grant_needs_approval",
        )
    if approvals >= request.quorum or (not vote.approves and (request.veto or unreachable)):
        approved = approvals >= request.quorum
        action = _approved_action(request, command) if approved else None
        decision = ResponseReceived(
            request_id=command.request_id,
            responder=command.responder,
            option=command.option,
            text=command.text,
            approved=approved,
            channel=command.channel,
            responded_at=command.now,
            routed_by=command.routed_by,
            # A lone vote is the response itself: the log need not say it twice.
            votes=votes if len(votes) > 1 else (),
            action=action,
            fingerprint=None if action is None else fingerprint_of(action),
            edited=action is not None and action != request.action,
        )
        if command.grant is None or decision.action is None:
            return [decision]
        return [decision, _grant(command, command.grant, request, decision)]
    return [
        VoteCast(
            request_id=command.request_id,
            member=member,
            option=vote.option,
            text=vote.text,
            approves=vote.approves,
            channel=vote.channel,
            routed_by=vote.routed_by,
            cast_at=vote.at,
        )
    ]


def _approved_action(request: RequestCreated, command: AnswerRequest) -> Action | None:
    if request.action is None or command.args is None:
        return request.action
    return Action(tool=request.action.tool, args=command.args)


def _grant(
    command: AnswerRequest, ask: GrantAsk, request: RequestCreated, decision: ResponseReceived
) -> GrantIssued:
    assert decision.action is not None
    assert command.grant_id is not None and command.workspace is not None
    exact = ask.scope == "exact"
    return GrantIssued(
        grant_id=command.grant_id,
        workspace=command.workspace,
        session_id=request.session_id,
        scope=ask.scope,
        tool=decision.action.tool,
        fingerprint=decision.fingerprint if exact else None,
        request_id=request.request_id,
        issued_by=command.member or command.responder,
        issued_at=command.now,
        expires_at=command.now + timedelta(seconds=ask.seconds),
    )


def _approved(request: RequestCreated, command: AnswerRequest) -> bool:
    if command.option is not None:
        for option in request.options:
            if option.label == command.option:
                return approves(option)
        raise DomainError(f"{command.option!r} is not one of the options", code="unknown_option")
    assert command.text is not None
    if request.options and not request.allow_text:
        raise DomainError("this request accepts only its options", code="text_not_allowed")
    return text_approves(command.text, request.request_type)


def _cancel(command: CancelRequest, state: Pending | Final) -> list[Event]:
    match state:
        case Cancelled():
            return []
        case Answered() | Expired():
            _refuse_final(state)
        case Pending():
            _refuse_if_due(state, command.now)
            return [
                RequestCancelled(
                    request_id=command.request_id, reason=command.reason, cancelled_at=command.now
                )
            ]
        case _:
            assert_never(state)


def _expire(command: ExpireRequest, state: Pending | Final) -> list[Event]:
    match state:
        case Answered() | Cancelled() | Expired():
            return []
        case Pending():
            due = state.request.expires_at
            if due is None:
                raise DomainError("this request never expires", code="not_due")
            if command.now < due:
                raise DomainError(f"request is due at {due.isoformat()}", code="not_due")
            on_timeout = state.request.on_timeout
            return [
                RequestExpired(
                    request_id=command.request_id,
                    on_timeout=on_timeout,
                    approved=_TIMEOUT_APPROVES[on_timeout],
                    expired_at=command.now,
                )
            ]
        case _:
            assert_never(state)


def _refuse_final(state: Final) -> NoReturn:
    request_id = state.request.request_id
    match state:
        case Answered():
            raise AlreadyDecided(f"request {request_id!r} was already answered")
        case Cancelled():
            # Cancelling is a decision (the agent's): later answers lose to it
            # exactly as they would to a human's answer.
            raise AlreadyDecided(f"request {request_id!r} was cancelled")
        case Expired():
            raise RequestClosed(f"request {request_id!r} has expired", code="request_expired")
        case _:
            assert_never(state)


def _refuse_if_due(state: Pending, now: datetime) -> None:
    expires_at = state.request.expires_at
    if expires_at is not None and now >= expires_at:
        raise RequestClosed(
            f"request {state.request.request_id!r} has expired", code="request_expired"
        )


def evolve(state: State, event: Event) -> State:
    """The state after ``event``; events that do not apply leave it unchanged.

    Final states ignore everything, and so does every state for events of other
    streams and for bookkeeping (failed deliveries, refused answers, webhook
    attempts), which the reactors read from the log themselves.
    """
    match state, event:
        case NotCreated(), RequestCreated() as created:
            return Pending(request=created)
        case Pending() as pending, RequestDelivered() as delivered:
            return msgspec.structs.replace(pending, deliveries=(*pending.deliveries, delivered))
        case Pending() as pending, ReminderSent():
            return msgspec.structs.replace(pending, reminders=pending.reminders + 1)
        case Pending() as pending, VoteCast() as cast:
            return msgspec.structs.replace(pending, votes=(*pending.votes, cast.vote))
        case Pending() as pending, RequestEscalated(step=step):
            return msgspec.structs.replace(pending, escalated=(*pending.escalated, step))
        case Pending() as pending, ExpiryWarned():
            return msgspec.structs.replace(pending, warned=True)
        case Pending() as pending, ResponseReceived() as response:
            return Answered(
                request=pending.request, deliveries=pending.deliveries, response=response
            )
        case Pending() as pending, RequestCancelled() as cancellation:
            return Cancelled(
                request=pending.request, deliveries=pending.deliveries, cancellation=cancellation
            )
        case Pending() as pending, RequestExpired() as expiry:
            return Expired(request=pending.request, deliveries=pending.deliveries, expiry=expiry)
        case _:
            return state


def fold(events: Iterable[Event]) -> State:
    """The state of a request stream, replayed from :data:`initial`."""
    return reduce(evolve, events, initial)


def is_terminal(state: State) -> bool:
    """True once the request was answered, cancelled or expired."""
    return isinstance(state, Answered | Cancelled | Expired)


def status_of(state: State) -> Status:
    """The lifecycle word for ``state``; the HTTP layer maps it to the reference's words."""
    match state:
        case NotCreated():
            return "not_created"
        case Pending(deliveries=()):
            return "pending"
        case Pending():
            return "delivered"
        case Answered():
            return "answered"
        case Cancelled():
            return "cancelled"
        case Expired():
            return "expired"
        case _:
            assert_never(state)
