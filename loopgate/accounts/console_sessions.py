"""Console sessions: the command handler for the ``console-<id>`` streams.

A browser that signed in to the web console holds a session, recorded as
:class:`~loopgate.events.ConsoleSignedIn`. The session is looked up on every
console request (one short stream, read by its unique key), which is what
lets signing out end it on the server at once, in every process, instead of
leaving a stolen cookie valid until it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from loopgate.accounts.users import UserView
from loopgate.commands.base import Actor, new_id, utcnow
from loopgate.domain import console as console_domain
from loopgate.domain.console import ConsoleSession
from loopgate.errors import ConcurrencyError
from loopgate.events import Meta
from loopgate.store.base import EventStore


class ConsoleSessions:
    """Open, look up and end console sessions, over one store."""

    def __init__(
        self,
        store: EventStore,
        *,
        ttl_seconds: int,
        clock: Callable[[], datetime] = utcnow,
        ids: Callable[[], str] = new_id,
    ) -> None:
        self.store = store
        self.ttl = timedelta(seconds=ttl_seconds)
        self.clock = clock
        self.ids = ids

    async def sign_in(self, user: UserView, correlation_id: str | None = None) -> ConsoleSession:
        """A new session for ``user``, whose credentials the caller has just checked."""
        now = self.clock()
        command = console_domain.SignIn(
            session_id=self.ids(),
            user_id=user.user_id,
            username=user.username,
            expires_at=now + self.ttl,
            now=now,
        )
        events = console_domain.decide(command, console_domain.initial)
        meta = Meta(actor=user.user_id, tenant=user.user_id, correlation_id=correlation_id)
        await self.store.append(f"console-{command.session_id}", 0, events, meta)
        state = console_domain.fold(events)
        assert isinstance(state, ConsoleSession)
        return state

    async def sign_out(self, session_id: str, actor: Actor) -> None:
        """End the actor's session; again is a no-op (a concurrent sign-out wins just the same)."""
        stream = f"console-{session_id}"
        history = await self.store.read_stream(stream)
        command = console_domain.SignOut(session_id=session_id, user_id=actor.id, now=self.clock())
        events = console_domain.decide(command, console_domain.fold(r.event for r in history))
        if events:
            # Nothing but a sign-out can follow a sign-in, so a conflict here
            # means the session was just signed out elsewhere: done either way.
            try:
                await self.store.append(stream, history[-1].version, events, actor.meta())
            except ConcurrencyError:
                return

    async def usable(self, session_id: str) -> ConsoleSession | None:
        """The session if a browser holding it is signed in now; None otherwise."""
        history = await self.store.read_stream(f"console-{session_id}")
        state = console_domain.fold(r.event for r in history)
        if not console_domain.is_usable(state, self.clock()):
            return None
        assert isinstance(state, ConsoleSession)
        return state
