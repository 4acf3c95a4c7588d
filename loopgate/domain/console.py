"""The console session decider: one browser's sign-in to the web console.

Stream ``console-<id>``. Signing in is checked elsewhere (the password, the
lock-out: :mod:`loopgate.accounts.users`); this aggregate only says whether a
signed-in browser's session still holds, so that signing out ends it on the
server and not just in the browser.

Rules:

* A session is opened once; opening an existing one is a :class:`Conflict`
  (``console_session_exists``): ids are random, so that is a bug.
* Signing out is final and idempotent: signing out again changes nothing.
* Only the session's own user signs it out; for anyone else, and for an
  unknown id, it is :class:`NotFound` (``console_session_not_found``).
* A session is usable while it is open and before its ``expires_at``
  (:func:`is_usable`); an expired one needs no event to end.

The queue's tabs are here too (:func:`queue_tab`, :func:`in_tab`): "Routed to
me" shows the requests whose approvers name the signed-in member; owners and
admins also get "All", every open request of the workspace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import reduce
from typing import Literal, TypeAlias, assert_never

import msgspec

from loopgate.domain.teams import route_match
from loopgate.errors import Conflict, NotFound
from loopgate.events import ConsoleSignedIn, ConsoleSignedOut, Event, Role

# --- state ------------------------------------------------------------------


class NoConsoleSession(msgspec.Struct, frozen=True):
    """No event yet: nobody signed in under this id."""


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """A sign-in; ``signed_out_at`` is set once the user signed out."""

    session_id: str
    user_id: str
    username: str
    signed_in_at: datetime
    expires_at: datetime
    signed_out_at: datetime | None = None


State: TypeAlias = NoConsoleSession | ConsoleSession

initial: State = NoConsoleSession()


# --- commands ---------------------------------------------------------------


class SignIn(msgspec.Struct, frozen=True, kw_only=True):
    """Open a session for a user whose password was just checked."""

    session_id: str
    user_id: str
    username: str
    expires_at: datetime
    now: datetime


class SignOut(msgspec.Struct, frozen=True, kw_only=True):
    """End a session, on its user's behalf."""

    session_id: str
    user_id: str
    now: datetime


Command: TypeAlias = SignIn | SignOut


# --- decider ----------------------------------------------------------------


def decide(command: Command, state: State) -> list[Event]:
    """The events ``command`` produces in ``state``; raises if it is not allowed."""
    match command:
        case SignIn():
            return _sign_in(command, state)
        case SignOut():
            return _sign_out(command, state)
        case _:
            assert_never(command)


def _sign_in(command: SignIn, state: State) -> list[Event]:
    match state:
        case ConsoleSession():
            raise Conflict(
                f"console session {command.session_id!r} already exists",
                code="console_session_exists",
            )
        case NoConsoleSession():
            return [
                ConsoleSignedIn(
                    session_id=command.session_id,
                    user_id=command.user_id,
                    username=command.username,
                    signed_in_at=command.now,
                    expires_at=command.expires_at,
                )
            ]
        case _:
            assert_never(state)


def _sign_out(command: SignOut, state: State) -> list[Event]:
    match state:
        case ConsoleSession(user_id=owner) if owner == command.user_id:
            if state.signed_out_at is not None:
                return []
            return [ConsoleSignedOut(session_id=command.session_id, signed_out_at=command.now)]
        case ConsoleSession() | NoConsoleSession():
            raise NotFound(
                f"console session {command.session_id!r} not found",
                code="console_session_not_found",
            )
        case _:
            assert_never(state)


def evolve(state: State, event: Event) -> State:
    """The state after ``event``; events that do not apply leave it unchanged."""
    match state, event:
        case NoConsoleSession(), ConsoleSignedIn() as signed_in:
            return ConsoleSession(
                session_id=signed_in.session_id,
                user_id=signed_in.user_id,
                username=signed_in.username,
                signed_in_at=signed_in.signed_in_at,
                expires_at=signed_in.expires_at,
            )
        case ConsoleSession(signed_out_at=None), ConsoleSignedOut() as signed_out:
            return msgspec.structs.replace(state, signed_out_at=signed_out.signed_out_at)
        case _:
            return state


def fold(events: Iterable[Event]) -> State:
    """The state of a console session stream, replayed from :data:`initial`."""
    return reduce(evolve, events, initial)


def is_terminal(state: State) -> bool:
    """True once signed out: nothing can happen to the session any more."""
    return isinstance(state, ConsoleSession) and state.signed_out_at is not None


def is_usable(state: State, now: datetime) -> bool:
    """Whether a browser holding this session is signed in at ``now``."""
    return (
        isinstance(state, ConsoleSession) and state.signed_out_at is None and now < state.expires_at
    )


# --- the queue's tabs ---------------------------------------------------------

QueueTab = Literal["mine", "all"]
ALL_TAB_ROLES: frozenset[Role] = frozenset({"owner", "admin"})
"""Who sees the "All" tab: everyone else sees only what is routed to them."""


def tabs_for(role: Role | None) -> tuple[QueueTab, ...]:
    return ("mine", "all") if role in ALL_TAB_ROLES else ("mine",)


def queue_tab(asked: str | None, role: Role | None) -> QueueTab:
    """The tab a queue page shows: "all" only when asked for and the role may see it."""
    return "all" if asked == "all" and "all" in tabs_for(role) else "mine"


def in_tab(tab: QueueTab, approvers: Sequence[str], principals: frozenset[str]) -> bool:
    """Whether a request routed to ``approvers`` belongs in ``tab`` for a member holding
    ``principals``: the same match that lets them answer it (``Requests.answer``)."""
    return tab == "all" or route_match(approvers, principals) is not None
