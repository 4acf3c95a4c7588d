"""The session decider: an agent's registration and its Telegram operator.

Stream ``session-<tenant>/<id>`` (older logs: ``session-<id>``;
``commands/sessions.py`` finds which). The caller loads the stream of the
command's ``session_id`` in the actor's tenant, folds it into a :data:`State`,
calls :func:`decide` and appends the events it returns; an empty list means
"nothing to do".

Rules:

* Registering a new session emits :class:`SessionRegistered`.
* Re-registering an active session with the same ``client_id`` and
  ``telegram_id`` is a no-op, because reference agents register on every start.
* Re-registering an active session with a different ``client_id`` or
  ``telegram_id`` is a :class:`StateConflict` (``session_exists``, 409): one
  agent must not silently take over another's session and its operator.
* Registering a deactivated session reactivates it, with the new binding.
* A ``callback_url`` given on registration becomes the session's default
  webhook; one left out keeps the current default, since reference agents
  re-register on every start without one. Changing it alone re-registers.
* Deactivating an unknown session is :class:`NotFound`, an inactive one a
  :class:`StateConflict` (``session_inactive``, 409).

A session is never terminal: a deactivated one can always be registered again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import reduce
from typing import TypeAlias, assert_never

import msgspec

from loopgate.errors import NotFound, StateConflict
from loopgate.events import Event, SessionDeactivated, SessionRegistered

# --- state ------------------------------------------------------------------


class NotRegistered(msgspec.Struct, frozen=True):
    """No event yet: the session does not exist."""


class Session(msgspec.Struct, frozen=True, kw_only=True):
    """A registered session; ``active`` is False once it was deactivated."""

    session_id: str
    client_id: str
    telegram_id: int | None
    active: bool
    registered_at: datetime
    deactivated_at: datetime | None = None
    callback_url: str | None = None


State: TypeAlias = NotRegistered | Session

initial: State = NotRegistered()


# --- commands ---------------------------------------------------------------


class RegisterSession(msgspec.Struct, frozen=True, kw_only=True):
    """Register (or re-register, or reactivate) a session."""

    session_id: str
    client_id: str
    telegram_id: int | None = None
    callback_url: str | None = None
    now: datetime


class DeactivateSession(msgspec.Struct, frozen=True, kw_only=True):
    """Stop a session from accepting new requests."""

    session_id: str
    now: datetime


Command: TypeAlias = RegisterSession | DeactivateSession


# --- decider ----------------------------------------------------------------


def decide(command: Command, state: State) -> list[Event]:
    """The events ``command`` produces in ``state``; raises if it is not allowed."""
    match command:
        case RegisterSession():
            return _register(command, state)
        case DeactivateSession():
            return _deactivate(command, state)
        case _:
            assert_never(command)


def _register(command: RegisterSession, state: State) -> list[Event]:
    callback_url = command.callback_url
    if callback_url is None and isinstance(state, Session):
        callback_url = state.callback_url
    binding = (command.client_id, command.telegram_id)
    match state:
        case Session(active=True) if (state.client_id, state.telegram_id) == binding and (
            state.callback_url == callback_url
        ):
            return []
        case Session(active=True) if (state.client_id, state.telegram_id) != binding:
            raise StateConflict(
                f"session {command.session_id!r} is registered to client {state.client_id!r}"
                f" with another operator; deactivate it first or use another session id",
                code="session_exists",
            )
        case NotRegistered() | Session():
            return [
                SessionRegistered(
                    session_id=command.session_id,
                    client_id=command.client_id,
                    telegram_id=command.telegram_id,
                    callback_url=callback_url,
                    registered_at=command.now,
                )
            ]
        case _:
            assert_never(state)


def _deactivate(command: DeactivateSession, state: State) -> list[Event]:
    match state:
        case NotRegistered():
            raise NotFound(f"session {command.session_id!r} not found", code="session_not_found")
        case Session(active=False):
            raise StateConflict(
                f"session {command.session_id!r} is already inactive", code="session_inactive"
            )
        case Session():
            return [SessionDeactivated(session_id=command.session_id, deactivated_at=command.now)]
        case _:
            assert_never(state)


def evolve(state: State, event: Event) -> State:
    """The state after ``event``; events that do not apply leave it unchanged."""
    match state, event:
        case _, SessionRegistered() as registered:
            return Session(
                session_id=registered.session_id,
                client_id=registered.client_id,
                telegram_id=registered.telegram_id,
                active=True,
                registered_at=registered.registered_at,
                callback_url=registered.callback_url,
            )
        case Session(active=True) as session, SessionDeactivated() as deactivated:
            return msgspec.structs.replace(
                session, active=False, deactivated_at=deactivated.deactivated_at
            )
        case _:
            return state


def fold(events: Iterable[Event]) -> State:
    """The state of a session stream, replayed from :data:`initial`."""
    return reduce(evolve, events, initial)


def is_terminal(state: State) -> bool:
    """Always False: a deactivated session can be registered again."""
    return False


def ensure_active(state: State, session_id: str) -> Session:
    """The session if it accepts new requests; NotFound or ``session_inactive`` otherwise.

    Creating a request spans two aggregates, so the command handler calls this
    on the session's state before deciding on the request.
    """
    match state:
        case NotRegistered():
            raise NotFound(f"session {session_id!r} not found", code="session_not_found")
        case Session(active=False):
            raise StateConflict(f"session {session_id!r} is inactive", code="session_inactive")
        case Session():
            return state
        case _:
            assert_never(state)
