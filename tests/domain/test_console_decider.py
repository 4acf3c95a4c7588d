"""The console session decider, given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopgate.domain.console import (
    ConsoleSession,
    NoConsoleSession,
    SignIn,
    SignOut,
    State,
    decide,
    evolve,
    fold,
    initial,
    is_terminal,
    is_usable,
)
from loopgate.errors import Conflict, NotFound
from loopgate.events import (
    ApiKeyRevoked,
    ConsoleSignedIn,
    ConsoleSignedOut,
    Event,
    SessionRegistered,
    UserLoggedIn,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
EXPIRES = T0 + timedelta(hours=12)


def signed_in(user_id: str = "u1") -> Event:
    return ConsoleSignedIn(
        session_id="c1", user_id=user_id, username="alice", signed_in_at=T0, expires_at=EXPIRES
    )


def signed_out(at: datetime = T1) -> Event:
    return ConsoleSignedOut(session_id="c1", signed_out_at=at)


def given(*events: Event) -> State:
    return fold(events)


def sign_in() -> SignIn:
    return SignIn(session_id="c1", user_id="u1", username="alice", expires_at=EXPIRES, now=T0)


def sign_out(user_id: str = "u1", now: datetime = T1) -> SignOut:
    return SignOut(session_id="c1", user_id=user_id, now=now)


def test_signing_in_opens_a_session_until_its_expiry() -> None:
    events = decide(sign_in(), initial)
    assert events == [signed_in()]
    state = given(*events)
    assert isinstance(state, ConsoleSession)
    assert (state.user_id, state.username, state.expires_at) == ("u1", "alice", EXPIRES)


def test_refuses_to_open_a_session_twice() -> None:
    with pytest.raises(Conflict) as refused:
        decide(sign_in(), given(signed_in()))
    assert refused.value.code == "console_session_exists"


def test_signing_out_ends_the_session() -> None:
    assert decide(sign_out(), given(signed_in())) == [signed_out()]


def test_signing_out_again_changes_nothing() -> None:
    assert decide(sign_out(now=T1 + timedelta(minutes=1)), given(signed_in(), signed_out())) == []


@pytest.mark.parametrize(
    ("history", "user_id"),
    [((), "u1"), ((signed_in(),), "someone-else")],
    ids=["unknown session", "another user's session"],
)
def test_signing_out_a_session_that_is_not_yours_is_not_found(
    history: tuple[Event, ...], user_id: str
) -> None:
    with pytest.raises(NotFound) as refused:
        decide(sign_out(user_id=user_id), given(*history))
    assert refused.value.code == "console_session_not_found"


@pytest.mark.parametrize(
    ("history", "now", "usable"),
    [
        ((), T1, False),
        ((signed_in(),), T1, True),
        ((signed_in(),), EXPIRES - timedelta(seconds=1), True),
        ((signed_in(),), EXPIRES, False),
        ((signed_in(), signed_out()), T1, False),
    ],
    ids=["unknown", "open", "just before expiry", "at expiry", "signed out"],
)
def test_a_session_is_usable_while_open_and_unexpired(
    history: tuple[Event, ...], now: datetime, usable: bool
) -> None:
    assert is_usable(given(*history), now) is usable


def test_a_session_is_terminal_once_signed_out() -> None:
    assert not is_terminal(initial)
    assert not is_terminal(given(signed_in()))
    assert is_terminal(given(signed_in(), signed_out()))


def test_evolve_keeps_the_first_sign_out_time() -> None:
    state = given(signed_in(), signed_out(at=T1), signed_out(at=T1 + timedelta(hours=1)))
    assert isinstance(state, ConsoleSession) and state.signed_out_at == T1


@pytest.mark.parametrize(
    "event",
    [
        SessionRegistered(session_id="s1", client_id="agent", registered_at=T0),
        UserLoggedIn(user_id="u1", logged_in_at=T0),
        ApiKeyRevoked(key_id="k", revoked_at=T0),
        signed_out(),
    ],
    ids=lambda e: type(e).__name__,
)
def test_evolve_ignores_events_that_do_not_apply_to_an_unknown_session(event: Event) -> None:
    assert evolve(initial, event) == NoConsoleSession()
