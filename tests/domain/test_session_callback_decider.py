"""A session's default webhook (``callback_url``), given / when / then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopgate.domain.session import RegisterSession, Session, decide, fold
from loopgate.errors import StateConflict
from loopgate.events import Event, SessionDeactivated, SessionRegistered

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
HOOK = "https://hooks.example.com/loopgate"
OTHER_HOOK = "https://ci.example.com/hook"


def registered(callback_url: str | None = HOOK) -> SessionRegistered:
    return SessionRegistered(
        session_id="s1",
        client_id="agent",
        telegram_id=None,
        callback_url=callback_url,
        registered_at=T0,
    )


def register(callback_url: str | None, client_id: str = "agent") -> RegisterSession:
    return RegisterSession(
        session_id="s1", client_id=client_id, telegram_id=None, callback_url=callback_url, now=T1
    )


def given(*events: Event) -> Session:
    state = fold(events)
    assert isinstance(state, Session)
    return state


def test_registering_with_a_callback_url_makes_it_the_default() -> None:
    (event,) = decide(register(HOOK), fold([]))
    assert given(event).callback_url == HOOK


def test_re_registering_without_one_keeps_the_default() -> None:
    # Reference agents re-register on every start and know nothing of webhooks.
    assert decide(register(None), given(registered())) == []


def test_re_registering_with_the_same_one_is_a_no_op() -> None:
    assert decide(register(HOOK), given(registered())) == []


def test_a_new_callback_url_alone_re_registers_the_session() -> None:
    (event,) = decide(register(OTHER_HOOK), given(registered()))
    assert isinstance(event, SessionRegistered)
    assert given(registered(), event).callback_url == OTHER_HOOK


def test_a_new_callback_url_does_not_allow_taking_over_another_clients_session() -> None:
    with pytest.raises(StateConflict):
        decide(register(OTHER_HOOK, client_id="intruder"), given(registered()))


def test_reactivating_keeps_the_default_unless_given_another() -> None:
    history = [registered(), SessionDeactivated(session_id="s1", deactivated_at=T0)]
    (kept,) = decide(register(None), given(*history))
    (replaced,) = decide(register(OTHER_HOOK), given(*history))
    assert (given(*history, kept).callback_url, given(*history, replaced).callback_url) == (
        HOOK,
        OTHER_HOOK,
    )
