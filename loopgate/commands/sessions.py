"""Session commands: register, deactivate, and the reads of the ``sessions`` projection."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from loopgate.commands.base import Actor, check_tenant, execute, utcnow
from loopgate.commands.callback_urls import check_callback_url
from loopgate.domain import session as session_domain
from loopgate.errors import NotFound
from loopgate.events import RecordedEvent
from loopgate.store.base import EventStore
from loopgate.views import SessionView


class Sessions:
    """An agent's sessions: the conversation its requests belong to."""

    def __init__(
        self,
        store: EventStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        allow_private_callbacks: bool = False,
    ) -> None:
        self.store, self.clock = store, clock
        self.allow_private_callbacks = allow_private_callbacks

    async def register_session(
        self,
        session_id: str,
        client_id: str,
        telegram_id: int | None,
        actor: Actor,
        *,
        callback_url: str | None = None,
    ) -> tuple[SessionView, bool]:
        """Register (or idempotently re-register) a session; True if anything changed.

        ``callback_url`` becomes the default webhook of the session's requests.
        """
        if callback_url is not None and not self.allow_private_callbacks:
            await check_callback_url(callback_url)
        command = session_domain.RegisterSession(
            session_id=session_id,
            client_id=client_id,
            telegram_id=telegram_id,
            callback_url=callback_url,
            now=self.clock(),
        )
        appended = await self._execute(session_id, command, actor)
        return await self.get_session(session_id, actor), bool(appended)

    async def deactivate_session(self, session_id: str, actor: Actor) -> SessionView:
        command = session_domain.DeactivateSession(session_id=session_id, now=self.clock())
        await self._execute(session_id, command, actor)
        return await self.get_session(session_id, actor)

    async def ensure_active(self, session_id: str, actor: Actor) -> None:
        """Raise unless ``session_id`` is the actor's tenant's and active (before a request)."""
        history = await self.store.read_stream(f"session-{session_id}")
        check_tenant(history, actor, f"session-{session_id}")
        session_domain.ensure_active(session_domain.fold(r.event for r in history), session_id)

    async def get_session(self, session_id: str, actor: Actor) -> SessionView:
        # By primary key alone: "AND tenant = ?" lets Postgres pick a generic
        # plan on the tenant index that scans a tenant's every row.
        rows = await self.store.fetch("SELECT * FROM sessions WHERE session_id = ?", (session_id,))
        if not rows or rows[0]["tenant"] != actor.tenant:
            raise NotFound(f"session {session_id!r} not found", code="session_not_found")
        return msgspec.convert(rows[0], SessionView, strict=False)

    async def list_sessions(self, actor: Actor, *, limit: int = 500) -> list[SessionView]:
        """The tenant's sessions, active ones first, then the most recently registered."""
        rows = await self.store.fetch(
            "SELECT * FROM sessions WHERE tenant = ?"
            " ORDER BY active DESC, registered_at DESC, session_id LIMIT ?",
            (actor.tenant, limit),
        )
        return msgspec.convert(rows, list[SessionView], strict=False)

    async def session_callback_url(self, session_id: str) -> str | None:
        """The session's default webhook, for its requests that name none."""
        rows = await self.store.fetch(
            "SELECT callback_url FROM sessions WHERE session_id = ?", (session_id,)
        )
        return rows[0]["callback_url"] if rows else None

    async def telegram_operator(self, session_id: str) -> int | None:
        """The Telegram id of the session's operator (also their private chat), if any."""
        rows = await self.store.fetch(
            "SELECT telegram_id FROM sessions WHERE session_id = ?", (session_id,)
        )
        return rows[0]["telegram_id"] if rows else None

    async def _execute(
        self, session_id: str, command: session_domain.Command, actor: Actor
    ) -> list[RecordedEvent]:
        return await execute(
            self.store,
            f"session-{session_id}",
            session_domain.fold,
            session_domain.decide,
            command,
            actor,
        )
