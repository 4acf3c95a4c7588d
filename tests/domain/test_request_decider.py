"""The request decider, given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import msgspec
import pytest
from event_samples import (
    ACTION_EVENTS,
    POLICY_EVENTS,
    RECEIPT_EVENTS,
    REQUEST_POLICY_EVENTS,
    TEAM_EVENTS,
)

from loopgate.domain.request import (
    DEFAULT_CONFIRMATION_OPTIONS,
    Answered,
    AnswerRequest,
    Cancelled,
    CancelRequest,
    Command,
    CreateRequest,
    Expired,
    ExpireRequest,
    MarkDelivered,
    NotCreated,
    Pending,
    RecordDeliveryFailure,
    RefuseAnswer,
    SendReminder,
    State,
    Status,
    decide,
    evolve,
    fold,
    initial,
    is_terminal,
    status_of,
)
from loopgate.errors import (
    AlreadyDecided,
    Conflict,
    DomainError,
    LoopgateError,
    NotFound,
    RequestClosed,
)
from loopgate.events import (
    AnswerRefused,
    AnyEvent,
    ApiKeyCreated,
    ApiKeyRevoked,
    ConsoleSignedIn,
    ConsoleSignedOut,
    DeliveryFailed,
    Event,
    ExpiryWarned,
    LoginFailed,
    OnTimeout,
    Option,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestEscalated,
    RequestExpired,
    ResponseReceived,
    SessionDeactivated,
    SessionRegistered,
    UserLoggedIn,
    UserRegistered,
    VoteCast,
    WebhookDelivered,
    WebhookFailed,
    WebhookSecretRotated,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
DUE = T0 + timedelta(seconds=300)
SOON = T0 + timedelta(seconds=60)
LATER = T0 + timedelta(seconds=120)
OPERATOR = "telegram:42"


# --- events (the "given") ---------------------------------------------------


def created(**changes: Any) -> RequestCreated:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "session_id": "s1",
        "client_id": "agent",
        "message": "Deploy v2 to production?",
        "request_type": "confirmation",
        "options": DEFAULT_CONFIRMATION_OPTIONS,
        "timeout_seconds": 300,
        "created_at": T0,
        "expires_at": DUE,
    } | changes
    return RequestCreated(**fields)


def delivered(channel: Any = "telegram", message_id: str | None = "m1") -> RequestDelivered:
    return RequestDelivered(
        request_id="r1", channel=channel, external_message_id=message_id, delivered_at=SOON
    )


def answered(option: str | None = "Approve", text: str | None = None) -> ResponseReceived:
    return ResponseReceived(
        request_id="r1",
        responder=OPERATOR,
        option=option,
        text=text,
        approved=True,
        channel="telegram",
        responded_at=SOON,
    )


def cancelled() -> RequestCancelled:
    return RequestCancelled(request_id="r1", reason="agent gave up", cancelled_at=SOON)


def expired() -> RequestExpired:
    return RequestExpired(request_id="r1", on_timeout="reject", approved=False, expired_at=DUE)


def given(*events: Event) -> State:
    return fold(events)


# --- commands (the "when") --------------------------------------------------


def create(**changes: Any) -> CreateRequest:
    fields: dict[str, Any] = {
        "request_id": "r1",
        "session_id": "s1",
        "client_id": "agent",
        "message": "Deploy v2 to production?",
        "request_type": "confirmation",
        "timeout_seconds": 300,
        "now": T0,
    } | changes
    return CreateRequest(**fields)


def answer(
    option: str | None = None,
    text: str | None = None,
    responder: str = OPERATOR,
    now: datetime = LATER,
) -> AnswerRequest:
    return AnswerRequest(
        request_id="r1", responder=responder, option=option, text=text, channel="telegram", now=now
    )


def refused(command: Command, state: State) -> LoopgateError:
    with pytest.raises(LoopgateError) as raised:
        decide(command, state)
    return raised.value


# --- every command in every state -------------------------------------------

HISTORIES: dict[str, list[Event]] = {
    "not_created": [],
    "pending": [created()],
    "delivered": [created(), delivered()],
    "answered": [created(), delivered(), answered()],
    "cancelled": [created(), cancelled()],
    "expired": [created(), delivered(), expired()],
}

COMMANDS: dict[str, Command] = {
    "create": create(),
    "deliver": MarkDelivered(request_id="r1", channel="console", now=LATER),
    "delivery_failed": RecordDeliveryFailure(
        request_id="r1", channel="telegram", error="chat not found", attempts=5, now=LATER
    ),
    "refuse": RefuseAnswer(
        request_id="r1", responder="telegram:9", channel="telegram", reason="r", now=LATER
    ),
    "remind": SendReminder(request_id="r1", channel="telegram", now=LATER),
    "answer": answer(option="Reject"),  # differs from the recorded answer
    "cancel": CancelRequest(request_id="r1", now=LATER),
    "expire": ExpireRequest(request_id="r1", now=DUE),
}


class Emits(NamedTuple):
    event_type: type[Event]
    status: Status


class Refuses(NamedTuple):
    error: type[LoopgateError]
    code: str


NOTHING = None
MISSING = Refuses(NotFound, "request_not_found")
EXISTS = Refuses(Conflict, "request_exists")
DECIDED = Refuses(AlreadyDecided, "already_decided")
WAS_CANCELLED = Refuses(AlreadyDecided, "already_decided")
WAS_EXPIRED = Refuses(RequestClosed, "request_expired")

MATRIX: list[tuple[str, str, Emits | Refuses | None]] = [
    ("not_created", "create", Emits(RequestCreated, "pending")),
    ("not_created", "deliver", MISSING),
    ("not_created", "delivery_failed", MISSING),
    ("not_created", "refuse", MISSING),
    ("not_created", "remind", MISSING),
    ("not_created", "answer", MISSING),
    ("not_created", "cancel", MISSING),
    ("not_created", "expire", MISSING),
    ("pending", "create", EXISTS),
    ("pending", "deliver", Emits(RequestDelivered, "delivered")),
    ("pending", "delivery_failed", Emits(DeliveryFailed, "pending")),
    ("pending", "refuse", Emits(AnswerRefused, "pending")),
    ("pending", "remind", Emits(ReminderSent, "pending")),
    ("pending", "answer", Emits(ResponseReceived, "answered")),
    ("pending", "cancel", Emits(RequestCancelled, "cancelled")),
    ("pending", "expire", Emits(RequestExpired, "expired")),
    ("delivered", "create", EXISTS),
    ("delivered", "deliver", Emits(RequestDelivered, "delivered")),
    ("delivered", "delivery_failed", Emits(DeliveryFailed, "delivered")),
    ("delivered", "refuse", Emits(AnswerRefused, "delivered")),
    ("delivered", "remind", Emits(ReminderSent, "delivered")),
    ("delivered", "answer", Emits(ResponseReceived, "answered")),
    ("delivered", "cancel", Emits(RequestCancelled, "cancelled")),
    ("delivered", "expire", Emits(RequestExpired, "expired")),
    ("answered", "create", EXISTS),
    ("answered", "deliver", DECIDED),
    ("answered", "delivery_failed", NOTHING),
    ("answered", "refuse", Emits(AnswerRefused, "answered")),
    ("answered", "remind", DECIDED),
    ("answered", "answer", DECIDED),
    ("answered", "cancel", DECIDED),
    ("answered", "expire", NOTHING),
    ("cancelled", "create", EXISTS),
    ("cancelled", "deliver", WAS_CANCELLED),
    ("cancelled", "delivery_failed", NOTHING),
    ("cancelled", "refuse", Emits(AnswerRefused, "cancelled")),
    ("cancelled", "remind", WAS_CANCELLED),
    ("cancelled", "answer", WAS_CANCELLED),
    ("cancelled", "cancel", NOTHING),
    ("cancelled", "expire", NOTHING),
    ("expired", "create", EXISTS),
    ("expired", "deliver", WAS_EXPIRED),
    ("expired", "delivery_failed", NOTHING),
    ("expired", "refuse", Emits(AnswerRefused, "expired")),
    ("expired", "remind", WAS_EXPIRED),
    ("expired", "answer", WAS_EXPIRED),
    ("expired", "cancel", WAS_EXPIRED),
    ("expired", "expire", NOTHING),
]


def test_the_matrix_covers_every_state_and_command() -> None:
    assert {(s, c) for s, c, _ in MATRIX} == {(s, c) for s in HISTORIES for c in COMMANDS}


@pytest.mark.parametrize(("history", "command", "outcome"), MATRIX)
def test_every_command_in_every_state(
    history: str, command: str, outcome: Emits | Refuses | None
) -> None:
    state = given(*HISTORIES[history])
    match outcome:
        case Refuses(error, code):
            error_raised = refused(COMMANDS[command], state)
            assert (type(error_raised), error_raised.code) == (error, code)
        case Emits(event_type, status):
            events = decide(COMMANDS[command], state)
            assert [type(e) for e in events] == [event_type]
            assert status_of(fold([*HISTORIES[history], *events])) == status
        case None:
            assert decide(COMMANDS[command], state) == []


# --- create -----------------------------------------------------------------


def test_creating_a_request_records_it_with_its_deadline() -> None:
    command = create(
        request_type="choice",
        options=(Option(label="Blue"), Option(label="Green")),
        metadata={"pr": 17},
        on_timeout="approve",
        callback_url="https://agent.example/hook",
        idempotency_key="k1",
    )
    assert decide(command, given()) == [
        created(
            request_type="choice",
            options=(Option(label="Blue"), Option(label="Green")),
            metadata={"pr": 17},
            on_timeout="approve",
            callback_url="https://agent.example/hook",
            idempotency_key="k1",
        )
    ]


def test_a_request_with_zero_timeout_never_expires() -> None:
    [event] = decide(create(timeout_seconds=0), given())
    assert isinstance(event, RequestCreated) and event.expires_at is None


def test_a_confirmation_without_options_gets_approve_and_reject() -> None:
    [event] = decide(create(request_type="confirmation", options=()), given())
    assert isinstance(event, RequestCreated)
    assert event.options == (
        Option(label="Approve", approves=True),
        Option(label="Reject", approves=False),
    )


def test_a_confirmation_keeps_the_options_it_was_given() -> None:
    options = (Option(label="Ship"), Option(label="⏸️ Hold"))
    [event] = decide(create(options=options), given())
    assert isinstance(event, RequestCreated) and event.options == options


def test_an_input_request_always_allows_text() -> None:
    [event] = decide(create(request_type="input", allow_text=False), given())
    assert isinstance(event, RequestCreated)
    assert (event.allow_text, event.options) == (True, ())


def test_a_choice_allows_text_only_when_asked() -> None:
    options = (Option(label="A"), Option(label="B"))
    [plain] = decide(create(request_type="choice", options=options), given())
    [open_] = decide(create(request_type="choice", options=options, allow_text=True), given())
    assert isinstance(plain, RequestCreated) and plain.allow_text is False
    assert isinstance(open_, RequestCreated) and open_.allow_text is True


def test_refuses_a_choice_without_options() -> None:
    error = refused(create(request_type="choice"), given())
    assert (type(error), error.code) == (DomainError, "options_required")


@pytest.mark.parametrize("message", ["", "   ", "\n\t"], ids=["empty", "spaces", "whitespace"])
def test_refuses_an_empty_message(message: str) -> None:
    error = refused(create(message=message), given())
    assert (type(error), error.code) == (DomainError, "empty_message")


def test_refuses_a_negative_timeout() -> None:
    error = refused(create(timeout_seconds=-1), given())
    assert (type(error), error.code) == (DomainError, "invalid_timeout")


@pytest.mark.parametrize(
    "labels", [("Yes", "Yes"), ("Yes", " yes "), ("Go", "No", "GO")], ids=["same", "case", "later"]
)
def test_refuses_duplicate_option_labels(labels: tuple[str, ...]) -> None:
    options = tuple(Option(label=label) for label in labels)
    error = refused(create(request_type="choice", options=options), given())
    assert (type(error), error.code) == (DomainError, "duplicate_option")


@pytest.mark.parametrize("label", ["", "  "])
def test_refuses_an_empty_option_label(label: str) -> None:
    options = (Option(label="Yes"), Option(label=label))
    error = refused(create(request_type="choice", options=options), given())
    assert (type(error), error.code) == (DomainError, "empty_option")


def test_refuses_to_create_a_request_twice() -> None:
    error = refused(create(), given(created()))
    assert (type(error), error.code, error.status) == (Conflict, "request_exists", 409)


# --- deliver and remind -----------------------------------------------------


def test_records_the_first_delivery() -> None:
    command = MarkDelivered(request_id="r1", channel="telegram", external_message_id="m1", now=SOON)
    events = decide(command, given(created()))
    assert events == [delivered()]
    state = given(created(), *events)
    assert isinstance(state, Pending) and state.delivered


def test_records_a_delivery_on_a_second_channel() -> None:
    command = MarkDelivered(request_id="r1", channel="console", now=LATER)
    events = decide(command, given(created(), delivered()))
    state = given(created(), delivered(), *events)
    assert isinstance(state, Pending)
    assert [(d.channel, d.external_message_id) for d in state.deliveries] == [
        ("telegram", "m1"),
        ("console", None),
    ]


def test_the_same_delivery_twice_is_a_no_op() -> None:
    command = MarkDelivered(
        request_id="r1", channel="telegram", external_message_id="m1", now=LATER
    )
    assert decide(command, given(created(), delivered())) == []


def test_the_same_message_id_in_another_chat_is_another_delivery() -> None:
    # Telegram counts message ids per chat: two approvers' chats can both show message 3.
    first = MarkDelivered(
        request_id="r1", channel="telegram", external_message_id="3", chat_id=5005, now=SOON
    )
    (shown,) = decide(first, given(created()))
    second = msgspec.structs.replace(first, chat_id=6006)
    assert [
        (e.chat_id, e.external_message_id) for e in decide(second, given(created(), shown))
    ] == [(6006, "3")]
    assert decide(first, given(created(), shown)) == []


def test_records_a_delivery_after_the_deadline_while_the_request_is_open() -> None:
    command = MarkDelivered(request_id="r1", channel="telegram", external_message_id="m2", now=DUE)
    assert [type(e) for e in decide(command, given(created()))] == [RequestDelivered]


def test_records_a_reminder() -> None:
    command = SendReminder(request_id="r1", channel="telegram", now=LATER)
    events = decide(command, given(created(), delivered()))
    assert events == [ReminderSent(request_id="r1", channel="telegram", sent_at=LATER)]
    state = given(created(), delivered(), *events, *events)
    assert isinstance(state, Pending) and state.reminders == 2


def test_refuses_a_reminder_after_the_deadline() -> None:
    error = refused(SendReminder(request_id="r1", channel="telegram", now=DUE), given(created()))
    assert (type(error), error.code) == (RequestClosed, "request_expired")


# --- answer -----------------------------------------------------------------


@pytest.mark.parametrize(("option", "approved"), [("Approve", True), ("Reject", False)])
def test_records_an_answer_by_option_with_its_verdict(option: str, approved: bool) -> None:
    events = decide(answer(option=option), given(created(), delivered()))
    assert events == [
        ResponseReceived(
            request_id="r1",
            responder=OPERATOR,
            option=option,
            approved=approved,
            channel="telegram",
            responded_at=LATER,
        )
    ]
    state = given(created(), delivered(), *events)
    assert isinstance(state, Answered)
    assert (state.response, state.deliveries) == (events[0], (delivered(),))


@pytest.mark.parametrize(
    ("option", "approved"),
    [("✅ Ship it", True), ("⏸️ Hold", False), ("Later, maybe", False), ("Override", False)],
)
def test_the_verdict_of_an_option_follows_the_approval_rule(option: str, approved: bool) -> None:
    options = (
        Option(label="✅ Ship it"),
        Option(label="⏸️ Hold"),
        Option(label="Later, maybe"),
        Option(label="Override", approves=False),
    )
    history = [created(request_type="choice", options=options)]
    [event] = decide(answer(option=option), given(*history))
    assert isinstance(event, ResponseReceived) and event.approved is approved


@pytest.mark.parametrize(
    ("request_type", "text", "approved"),
    [
        ("input", "Use the staging database", True),
        ("input", "no idea, stop asking", True),
        ("choice", "neither, wait for me", True),
        ("confirmation", "yes, go ahead", True),
        ("confirmation", "No, wait for QA", False),
    ],
)
def test_a_free_text_answer_approves_unless_it_declines_a_confirmation(
    request_type: Any, text: str, approved: bool
) -> None:
    options = (Option(label="A"),) if request_type == "choice" else ()
    history = [created(request_type=request_type, options=options, allow_text=True)]
    [event] = decide(answer(text=text), given(*history))
    assert isinstance(event, ResponseReceived)
    assert (event.text, event.option, event.approved) == (text, None, approved)


@pytest.mark.parametrize(
    ("option", "text"), [(None, None), ("Approve", "yes")], ids=["neither", "both"]
)
def test_refuses_an_answer_without_exactly_one_of_option_and_text(
    option: str | None, text: str | None
) -> None:
    error = refused(answer(option=option, text=text), given(created(allow_text=True)))
    assert (type(error), error.code) == (DomainError, "invalid_answer")


def test_refuses_an_empty_text_answer() -> None:
    error = refused(answer(text="  "), given(created(request_type="input", options=())))
    assert (type(error), error.code) == (DomainError, "empty_answer")


@pytest.mark.parametrize("option", ["Maybe", "approve", " Approve"])
def test_refuses_an_option_that_is_not_one_of_the_labels(option: str) -> None:
    error = refused(answer(option=option), given(created()))
    assert (type(error), error.code) == (DomainError, "unknown_option")


def test_refuses_an_option_on_a_request_without_options() -> None:
    error = refused(answer(option="Approve"), given(created(request_type="input", options=())))
    assert (type(error), error.code) == (DomainError, "unknown_option")


def test_refuses_text_when_only_the_options_may_answer() -> None:
    error = refused(answer(text="yes"), given(created(allow_text=False)))
    assert (type(error), error.code) == (DomainError, "text_not_allowed")


def test_accepts_text_on_a_request_without_options_even_if_text_was_not_asked_for() -> None:
    history = [created(request_type="input", options=(), allow_text=False)]
    assert [type(e) for e in decide(answer(text="42"), given(*history))] == [ResponseReceived]


@pytest.mark.parametrize("now", [DUE, DUE + timedelta(hours=1)], ids=["at", "after"])
def test_refuses_answer_after_expiry_even_before_it_is_recorded(now: datetime) -> None:
    error = refused(answer(option="Approve", now=now), given(created(), delivered()))
    assert (type(error), error.code, error.status) == (RequestClosed, "request_expired", 410)


def test_accepts_an_answer_just_before_the_deadline() -> None:
    command = answer(option="Approve", now=DUE - timedelta(microseconds=1))
    assert [type(e) for e in decide(command, given(created()))] == [ResponseReceived]


def test_a_request_without_timeout_can_be_answered_any_time() -> None:
    history = [created(timeout_seconds=0, expires_at=None)]
    command = answer(option="Approve", now=T0 + timedelta(days=365))
    assert [type(e) for e in decide(command, given(*history))] == [ResponseReceived]


@pytest.mark.parametrize(
    ("recorded", "again"),
    [
        (answered(option="Approve"), answer(option="Approve")),
        (answered(option=None, text="ok"), answer(text="ok")),
    ],
    ids=["option", "text"],
)
def test_the_same_answer_again_by_the_same_responder_is_a_no_op(
    recorded: ResponseReceived, again: AnswerRequest
) -> None:
    history = [created(allow_text=True), recorded]
    assert decide(again, given(*history)) == []
    # Even after the deadline: a replayed update must not turn into an error.
    assert decide(msgspec.structs.replace(again, now=DUE), given(*history)) == []


@pytest.mark.parametrize(
    ("recorded", "second"),
    [
        (answered(option="Approve"), answer(option="Reject")),
        (answered(option="Approve"), answer(option="Approve", responder="console:7")),
        (answered(option="Approve"), answer(text="ok")),
        (answered(option=None, text="ok"), answer(text="ok, but later")),
        (answered(option=None, text="ok"), answer(option="Approve")),
    ],
    ids=["other option", "other responder", "text instead", "other text", "option instead"],
)
def test_refuses_a_different_answer_after_the_decision(
    recorded: ResponseReceived, second: AnswerRequest
) -> None:
    error = refused(second, given(created(allow_text=True), recorded))
    assert (type(error), error.code, error.status) == (AlreadyDecided, "already_decided", 409)


# --- cancel -----------------------------------------------------------------


def test_cancels_an_open_request_with_its_reason() -> None:
    command = CancelRequest(request_id="r1", reason="agent gave up", now=SOON)
    events = decide(command, given(created(), delivered()))
    assert events == [cancelled()]
    state = given(created(), delivered(), *events)
    assert isinstance(state, Cancelled) and state.cancellation == cancelled()


def test_refuses_to_cancel_after_the_deadline() -> None:
    error = refused(CancelRequest(request_id="r1", now=DUE), given(created()))
    assert (type(error), error.code) == (RequestClosed, "request_expired")


def test_refuses_to_cancel_an_answered_request() -> None:
    error = refused(CancelRequest(request_id="r1", now=LATER), given(created(), answered()))
    assert (type(error), error.status) == (AlreadyDecided, 409)


# --- expire -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("on_timeout", "approved"), [("approve", True), ("reject", False), ("none", None)]
)
def test_expires_a_due_request_as_its_on_timeout_says(
    on_timeout: OnTimeout, approved: bool | None
) -> None:
    events = decide(ExpireRequest(request_id="r1", now=DUE), given(created(on_timeout=on_timeout)))
    assert events == [
        RequestExpired(request_id="r1", on_timeout=on_timeout, approved=approved, expired_at=DUE)
    ]
    state = given(created(on_timeout=on_timeout), *events)
    assert isinstance(state, Expired) and state.expiry == events[0]


def test_expires_a_request_whose_deadline_passed_long_ago() -> None:
    late = DUE + timedelta(days=2)
    [event] = decide(ExpireRequest(request_id="r1", now=late), given(created()))
    assert isinstance(event, RequestExpired) and event.expired_at == late


def test_refuses_to_expire_a_request_before_its_deadline() -> None:
    command = ExpireRequest(request_id="r1", now=DUE - timedelta(microseconds=1))
    error = refused(command, given(created()))
    assert (type(error), error.code) == (DomainError, "not_due")


def test_refuses_to_expire_a_request_that_never_expires() -> None:
    history = [created(timeout_seconds=0, expires_at=None)]
    error = refused(ExpireRequest(request_id="r1", now=DUE), given(*history))
    assert (type(error), error.code) == (DomainError, "not_due")


def test_a_last_second_answer_wins_over_the_expirer() -> None:
    state = given(created(), answered())
    assert decide(ExpireRequest(request_id="r1", now=DUE), state) == []


# --- evolve, fold, status ---------------------------------------------------

ALL_EVENTS: list[Event] = [
    created(),
    delivered(),
    ReminderSent(request_id="r1", channel="telegram", sent_at=SOON),
    DeliveryFailed(request_id="r1", channel="telegram", error="e", attempts=5, failed_at=SOON),
    AnswerRefused(
        request_id="r1", responder="telegram:9", channel="telegram", reason="r", refused_at=SOON
    ),
    answered(),
    cancelled(),
    expired(),
    WebhookDelivered(request_id="r1", url="u", status_code=200, attempt=1, delivered_at=SOON),
    WebhookFailed(request_id="r1", url="u", error="e", attempt=1, failed_at=SOON),
    SessionRegistered(session_id="s1", client_id="agent", registered_at=T0),
    SessionDeactivated(session_id="s1", deactivated_at=T0),
    UserRegistered(user_id="u", username="u", password_hash="h", registered_at=T0),
    UserLoggedIn(user_id="u", logged_in_at=T0),
    LoginFailed(user_id="u", reason="invalid_password", failed_at=T0),
    ApiKeyCreated(key_id="k", user_id="u", label="l", key_hash="h", prefix="p", created_at=T0),
    ApiKeyRevoked(key_id="k", revoked_at=T0),
    ConsoleSignedIn(session_id="c1", user_id="u", username="u", signed_in_at=T0, expires_at=T0),
    ConsoleSignedOut(session_id="c1", signed_out_at=T0),
    WebhookSecretRotated(tenant="local", secret="whsec_x", rotated_at=T0),
    *TEAM_EVENTS,
    *POLICY_EVENTS,
    *REQUEST_POLICY_EVENTS,
    *ACTION_EVENTS,
    *RECEIPT_EVENTS,
]
LIFECYCLE = (
    RequestCreated,
    RequestDelivered,
    ReminderSent,
    ResponseReceived,
    RequestCancelled,
    RequestExpired,
    VoteCast,
    ExpiryWarned,
    RequestEscalated,
)
UNRELATED = [e for e in ALL_EVENTS if not isinstance(e, LIFECYCLE)]
FINAL = ["answered", "cancelled", "expired"]


def test_the_samples_cover_every_event_type() -> None:
    catalog: tuple[type[Event], ...] = AnyEvent.__args__
    assert {type(e) for e in ALL_EVENTS} == set(catalog)


@pytest.mark.parametrize("history", HISTORIES.values(), ids=HISTORIES.keys())
@pytest.mark.parametrize("event", UNRELATED, ids=lambda e: type(e).__name__)
def test_evolve_ignores_events_that_are_not_about_the_lifecycle(
    history: list[Event], event: Event
) -> None:
    state = given(*history)
    assert evolve(state, event) == state


@pytest.mark.parametrize("history", [HISTORIES[name] for name in FINAL], ids=FINAL)
@pytest.mark.parametrize("event", ALL_EVENTS, ids=lambda e: type(e).__name__)
def test_a_final_state_ignores_every_later_event(history: list[Event], event: Event) -> None:
    state = given(*history)
    assert evolve(state, event) == state


@pytest.mark.parametrize("event", ALL_EVENTS[1:], ids=lambda e: type(e).__name__)
def test_a_request_that_was_never_created_ignores_everything_but_its_creation(
    event: Event,
) -> None:
    assert evolve(initial, event) == NotCreated()


def test_a_second_creation_does_not_reset_an_open_request() -> None:
    state = given(created(), delivered(), created(message="Something else?"))
    assert isinstance(state, Pending)
    assert (state.request, state.deliveries) == (created(), (delivered(),))


def test_folding_no_events_gives_the_initial_state() -> None:
    assert fold([]) == initial == NotCreated()


@pytest.mark.parametrize(
    ("history", "status", "terminal"),
    [
        ("not_created", "not_created", False),
        ("pending", "pending", False),
        ("delivered", "delivered", False),
        ("answered", "answered", True),
        ("cancelled", "cancelled", True),
        ("expired", "expired", True),
    ],
)
def test_status_and_terminality_of_every_state(history: str, status: str, terminal: bool) -> None:
    state = given(*HISTORIES[history])
    assert (status_of(state), is_terminal(state)) == (status, terminal)


def test_a_pending_request_is_delivered_only_after_a_delivery() -> None:
    before, after = given(created()), given(created(), delivered())
    assert isinstance(before, Pending) and isinstance(after, Pending)
    assert (before.delivered, after.delivered) == (False, True)
