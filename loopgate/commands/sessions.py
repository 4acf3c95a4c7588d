"""Session commands: register, deactivate, and the reads of the ``sessions`` projection.

Session ids are per tenant: two tenants registering ``production-deploy-bot``
get two sessions, and neither can tell that the other's exists. A session's
stream is ``session-<tenant>/<session_id>`` (:func:`session_stream`); a tenant
id (a user id or ``local``) holds no ``/``, so the first one ends it. Logs
written before sessions were per tenant name a session ``session-<session_id>``;
:func:`read_session` still finds those for the tenant that wrote them, so old
logs replay and keep working unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import msgspec

from loopgate.commands.base import Actor, execute, require, utcnow
from loopgate.commands.callback_urls import check_callback_url
from loopgate.domain import session as session_domain
from loopgate.errors import Conflict, NotFound
from loopgate.events import RecordedEvent, SessionRegistered
from loopgate.store.base import EventStore
from loopgate.views import SessionView


def session_stream(tenant: str, session_id: str) -> str:
    """The stream of a session registered since session ids are per tenant."""
    return f"session-{tenant}/{session_id}"


def legacy_session_stream(session_id: str) -> str:
    """The stream of a session registered while session ids were global."""
    return f"session-{session_id}"


def _is_session_of(history: list[RecordedEvent], tenant: str, session_id: str) -> bool:
    if not history or history[0].meta.tenant != tenant:
        return False
    first = history[0].event
    return isinstance(first, SessionRegistered) and first.session_id == session_id


async def read_session(
    store: EventStore, tenant: str, session_id: str
) -> tuple[str, list[RecordedEvent]]:
    """The stream of the tenant's session and its events (none yet: the stream to register on).

    A legacy stream counts only when the tenant wrote it; another tenant's is
    left alone, so an id squatted in an old log is free again for everyone else.
    """
    stream = session_stream(tenant, session_id)
    history = await store.read_stream(stream)
    if _is_session_of(history, tenant, session_id):
        return stream, history
    legacy = legacy_session_stream(session_id)
    legacy_history = await store.read_stream(legacy)
    if _is_session_of(legacy_history, tenant, session_id):
        return legacy, legacy_history
    if history:
        # Only an old log can do this: a global id "<tenant>/<id>" took the name.
        raise Conflict(
            f"session id {session_id!r} is unavailable; use another session id",
            code="session_id_unavailable",
        )
    return stream, []


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
        require(actor, "request.create")
        appended = await self._execute(session_id, command, actor)
        return await self.get_session(session_id, actor), bool(appended)

    async def deactivate_session(self, session_id: str, actor: Actor) -> SessionView:
        require(actor, "request.create")
        command = session_domain.DeactivateSession(session_id=session_id, now=self.clock())
        await self._execute(session_id, command, actor)
        return await self.get_session(session_id, actor)

    async def ensure_active(self, session_id: str, actor: Actor) -> None:
        """Raise unless the actor's tenant has an active ``session_id`` (before a request)."""
        _, history = await read_session(self.store, actor.tenant, session_id)
        session_domain.ensure_active(session_domain.fold(r.event for r in history), session_id)

    async def get_session(self, session_id: str, actor: Actor) -> SessionView:
        # The whole primary key, so a probe of it on either store.
        rows = await self.store.fetch(
            "SELECT * FROM sessions WHERE tenant = ? AND session_id = ?",
            (actor.tenant, session_id),
        )
        if not rows:
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

    async def session_callback_url(self, tenant: str, session_id: str) -> str | None:
        """The session's default webhook, for its requests that name none."""
        rows = await self.store.fetch(
            "SELECT callback_url FROM sessions WHERE tenant = ? AND session_id = ?",
            (tenant, session_id),
        )
        return rows[0]["callback_url"] if rows else None

    async def telegram_operator(self, tenant: str, session_id: str) -> int | None:
        """The Telegram id of the session's operator (also their private chat), if any."""
        rows = await self.store.fetch(
            "SELECT telegram_id FROM sessions WHERE tenant = ? AND session_id = ?",
            (tenant, session_id),
        )
        return rows[0]["telegram_id"] if rows else None

    async def _execute(
        self, session_id: str, command: session_domain.Command, actor: Actor
    ) -> list[RecordedEvent]:
        # The name is fixed once found: execute re-reads the stream on a retry.
        stream, _ = await read_session(self.store, actor.tenant, session_id)
        return await execute(
            self.store,
            stream,
            session_domain.fold,
            session_domain.decide,
            command,
            actor,
        )
