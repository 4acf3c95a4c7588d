"""The session decider, given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import pytest
from event_samples import (
    ACTION_EVENTS,
    POLICY_EVENTS,
    RECEIPT_EVENTS,
    REQUEST_POLICY_EVENTS,
    TEAM_EVENTS,
)

from loopgate.domain.session import (
    DeactivateSession,
    NotRegistered,
    RegisterSession,
    Session,
    State,
    decide,
    ensure_active,
    evolve,
    fold,
    initial,
    is_terminal,
)
from loopgate.errors import LoopgateError, NotFound, StateConflict
from loopgate.events import (
    AnswerRefused,
    AnyEvent,
    ApiKeyCreated,
    ApiKeyRevoked,
    ConsoleSignedIn,
    ConsoleSignedOut,
    DeliveryFailed,
    Event,
    LoginFailed,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestExpired,
    ResponseReceived,
    SessionDeactivated,
    SessionRegistered,
    UserLoggedIn,
    UserRegistered,
    WebhookDelivered,
    WebhookFailed,
    WebhookSecretRotated,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
T2 = T0 + timedelta(minutes=10)


def registered(client_id: str = "agent", telegram_id: int | None = 42, at: datetime = T0) -> Event:
    return SessionRegistered(
        session_id="s1", client_id=client_id, telegram_id=telegram_id, registered_at=at
    )


def deactivated(at: datetime = T1) -> Event:
    return SessionDeactivated(session_id="s1", deactivated_at=at)


def register(
    client_id: str = "agent", telegram_id: int | None = 42, now: datetime = T2
) -> RegisterSession:
    return RegisterSession(session_id="s1", client_id=client_id, telegram_id=telegram_id, now=now)


def deactivate(now: datetime = T2) -> DeactivateSession:
    return DeactivateSession(session_id="s1", now=now)


def given(*events: Event) -> State:
    return fold(events)


# --- every command in every state -------------------------------------------

HISTORIES: dict[str, list[Event]] = {
    "unknown": [],
    "active": [registered()],
    "inactive": [registered(), deactivated()],
}

COMMANDS: dict[str, RegisterSession | DeactivateSession] = {
    "register_same": register(),
    "register_other": register(telegram_id=7),
    "deactivate": deactivate(),
}


class Emits(NamedTuple):
    event_type: type[Event]
    active: bool


class Refuses(NamedTuple):
    error: type[LoopgateError]
    code: str


NOTHING = None

MATRIX: list[tuple[str, str, Emits | Refuses | None]] = [
    ("unknown", "register_same", Emits(SessionRegistered, active=True)),
    ("unknown", "register_other", Emits(SessionRegistered, active=True)),
    ("unknown", "deactivate", Refuses(NotFound, "session_not_found")),
    ("active", "register_same", NOTHING),
    ("active", "register_other", Refuses(StateConflict, "session_exists")),
    ("active", "deactivate", Emits(SessionDeactivated, active=False)),
    ("inactive", "register_same", Emits(SessionRegistered, active=True)),
    ("inactive", "register_other", Emits(SessionRegistered, active=True)),
    ("inactive", "deactivate", Refuses(StateConflict, "session_inactive")),
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
            with pytest.raises(LoopgateError) as raised:
                decide(COMMANDS[command], state)
            assert (type(raised.value), raised.value.code) == (error, code)
        case Emits(event_type, active):
            events = decide(COMMANDS[command], state)
            assert [type(e) for e in events] == [event_type]
            after = fold([*HISTORIES[history], *events])
            assert isinstance(after, Session) and after.active is active
        case None:
            assert decide(COMMANDS[command], state) == []


# --- register ---------------------------------------------------------------


def test_registers_a_new_session() -> None:
    assert decide(register(), given()) == [
        SessionRegistered(session_id="s1", client_id="agent", telegram_id=42, registered_at=T2)
    ]


def test_registers_a_session_without_a_telegram_operator() -> None:
    state = given(*decide(register(telegram_id=None), given()))
    assert state == Session(
        session_id="s1", client_id="agent", telegram_id=None, active=True, registered_at=T2
    )


def test_re_registering_an_active_session_unchanged_is_a_no_op() -> None:
    assert decide(register(now=T2), given(registered(at=T0))) == []


@pytest.mark.parametrize(
    ("client_id", "telegram_id"),
    [("agent", 7), ("agent", None), ("other-agent", 42)],
    ids=["new operator", "operator dropped", "new client"],
)
def test_refuses_to_re_register_an_active_session_with_another_binding(
    client_id: str, telegram_id: int | None
) -> None:
    with pytest.raises(StateConflict) as raised:
        decide(register(client_id, telegram_id), given(registered()))
    assert (raised.value.code, raised.value.status) == ("session_exists", 409)


@pytest.mark.parametrize(
    ("client_id", "telegram_id"),
    [("agent", 7), ("agent", None), ("other-agent", 42)],
    ids=["new operator", "operator dropped", "new client"],
)
def test_reactivating_with_another_binding_replaces_it(
    client_id: str, telegram_id: int | None
) -> None:
    history = [registered(), deactivated()]
    events = decide(register(client_id, telegram_id), given(*history))
    state = given(*history, *events)
    assert isinstance(state, Session)
    assert (state.client_id, state.telegram_id, state.registered_at) == (client_id, telegram_id, T2)


def test_registering_a_deactivated_session_reactivates_it() -> None:
    history = [registered(), deactivated()]
    events = decide(register(), given(*history))
    assert events == [
        SessionRegistered(session_id="s1", client_id="agent", telegram_id=42, registered_at=T2)
    ]
    assert given(*history, *events) == Session(
        session_id="s1", client_id="agent", telegram_id=42, active=True, registered_at=T2
    )


# --- deactivate -------------------------------------------------------------


def test_deactivates_an_active_session() -> None:
    events = decide(deactivate(now=T2), given(registered()))
    assert events == [SessionDeactivated(session_id="s1", deactivated_at=T2)]
    state = given(registered(), *events)
    assert isinstance(state, Session)
    assert (state.active, state.deactivated_at, state.telegram_id) == (False, T2, 42)


def test_refuses_to_deactivate_an_unknown_session() -> None:
    with pytest.raises(NotFound) as raised:
        decide(deactivate(), given())
    assert raised.value.code == "session_not_found"


def test_refuses_to_deactivate_a_session_twice() -> None:
    with pytest.raises(StateConflict) as raised:
        decide(deactivate(), given(registered(), deactivated()))
    assert raised.value.code == "session_inactive"
    assert raised.value.status == 409


# --- ensure_active (used when creating a request) -----------------------------


def test_an_active_session_accepts_requests() -> None:
    state = given(registered())
    assert ensure_active(state, "s1") is state


def test_an_unknown_session_accepts_no_requests() -> None:
    with pytest.raises(NotFound) as raised:
        ensure_active(given(), "s1")
    assert raised.value.code == "session_not_found"


def test_a_deactivated_session_accepts_no_requests() -> None:
    with pytest.raises(StateConflict) as raised:
        ensure_active(given(registered(), deactivated()), "s1")
    assert raised.value.code == "session_inactive"


# --- evolve, fold, is_terminal ----------------------------------------------

FOREIGN_EVENTS: list[Event] = [
    RequestCreated(
        request_id="r1",
        session_id="s1",
        client_id="agent",
        message="?",
        request_type="input",
        timeout_seconds=0,
        created_at=T0,
    ),
    RequestDelivered(request_id="r1", channel="telegram", delivered_at=T0),
    ReminderSent(request_id="r1", channel="telegram", sent_at=T0),
    DeliveryFailed(request_id="r1", channel="telegram", error="e", attempts=5, failed_at=T0),
    AnswerRefused(
        request_id="r1", responder="telegram:9", channel="telegram", reason="r", refused_at=T0
    ),
    ResponseReceived(
        request_id="r1", responder="u", text="x", approved=True, channel="api", responded_at=T0
    ),
    RequestCancelled(request_id="r1", cancelled_at=T0),
    RequestExpired(request_id="r1", on_timeout="none", expired_at=T0),
    WebhookDelivered(request_id="r1", url="u", status_code=200, attempt=1, delivered_at=T0),
    WebhookFailed(request_id="r1", url="u", error="e", attempt=1, failed_at=T0),
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


def test_the_foreign_samples_cover_every_other_event_type() -> None:
    catalog: tuple[type[Event], ...] = AnyEvent.__args__
    session_events = {SessionRegistered, SessionDeactivated}
    assert {type(e) for e in FOREIGN_EVENTS} == set(catalog) - session_events


@pytest.mark.parametrize("history", HISTORIES.values(), ids=HISTORIES.keys())
@pytest.mark.parametrize("event", FOREIGN_EVENTS, ids=lambda e: type(e).__name__)
def test_evolve_ignores_events_of_other_aggregates(history: list[Event], event: Event) -> None:
    state = given(*history)
    assert evolve(state, event) == state


def test_evolve_ignores_a_deactivation_of_an_unknown_session() -> None:
    assert evolve(initial, deactivated()) == NotRegistered()


def test_evolve_keeps_the_first_deactivation_time() -> None:
    state = given(registered(), deactivated(at=T1), deactivated(at=T2))
    assert isinstance(state, Session) and state.deactivated_at == T1


def test_reactivation_clears_the_deactivation_time() -> None:
    state = given(registered(), deactivated(), registered(at=T2))
    assert isinstance(state, Session) and state.deactivated_at is None


def test_folding_no_events_gives_the_initial_state() -> None:
    assert fold([]) == initial == NotRegistered()


@pytest.mark.parametrize("history", HISTORIES.values(), ids=HISTORIES.keys())
def test_a_session_is_never_terminal(history: list[Any]) -> None:
    assert is_terminal(given(*history)) is False
