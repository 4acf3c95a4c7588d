"""The command handlers: what every surface (HTTP, MCP, Telegram, console) calls.

Each command reads its stream, folds it, asks the pure decider for events and
appends them with the version it read. A stale version means someone else
appended in between; the handler re-reads and decides again, and the decider
then says what the second writer gets (a no-op, or ``AlreadyDecided``). That
is how "first answer wins" holds across processes.

Reads come from the projections, which the append updated in its own
transaction, so a read right after a command sees it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec

from loopgate.domain import request as request_domain
from loopgate.domain import session as session_domain
from loopgate.errors import ConcurrencyError, Conflict, Forbidden, NotFound
from loopgate.events import (
    Channel,
    Event,
    Meta,
    OnTimeout,
    Option,
    RecordedEvent,
    RequestType,
)
from loopgate.hub import Hub
from loopgate.store.base import EventStore
from loopgate.views import RequestView, SessionView, new_request_view, request_view
from loopgate.webhooks import check_callback_url

APPEND_ATTEMPTS = 5

S = TypeVar("S")
C = TypeVar("C")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who is acting, for whom, under which HTTP request."""

    id: str = "anonymous"
    tenant: str = "local"
    correlation_id: str | None = None

    def meta(self) -> Meta:
        return Meta(actor=self.id, tenant=self.tenant, correlation_id=self.correlation_id)


SYSTEM = Actor(id="system")


class Service:
    """Loopgate's use cases, over one store and one hub."""

    def __init__(
        self,
        store: EventStore,
        hub: Hub,
        *,
        default_timeout_seconds: int = 300,
        clock: Callable[[], datetime] = utcnow,
        ids: Callable[[], str] = new_id,
        allow_private_callbacks: bool = False,
    ) -> None:
        self.store = store
        self.allow_private_callbacks = allow_private_callbacks
        self.hub = hub
        self.default_timeout_seconds = default_timeout_seconds
        self.clock = clock
        self.ids = ids

    async def _execute(
        self,
        stream: str,
        fold: Callable[[Iterable[Event]], S],
        decide: Callable[[C, S], list[Event]],
        command: C,
        actor: Actor,
    ) -> list[RecordedEvent]:
        """Decide on the stream's current state and append; retry on a stale version."""
        for attempt in range(APPEND_ATTEMPTS):
            history = await self.store.read_stream(stream)
            _check_tenant(history, actor, stream)
            events = decide(command, fold(r.event for r in history))
            if not events:
                return []
            try:
                return await self.store.append(
                    stream, history[-1].version if history else 0, events, actor.meta()
                )
            except ConcurrencyError:
                if attempt == APPEND_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _on_request(
        self, command: request_domain.Command, actor: Actor
    ) -> list[RecordedEvent]:
        return await self._execute(
            f"request-{command.request_id}",
            request_domain.fold,
            request_domain.decide,
            command,
            actor,
        )

    # --- sessions -------------------------------------------------------------

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
        appended = await self._execute(
            f"session-{session_id}", session_domain.fold, session_domain.decide, command, actor
        )
        return await self.get_session(session_id, actor), bool(appended)

    async def deactivate_session(self, session_id: str, actor: Actor) -> SessionView:
        command = session_domain.DeactivateSession(session_id=session_id, now=self.clock())
        await self._execute(
            f"session-{session_id}", session_domain.fold, session_domain.decide, command, actor
        )
        return await self.get_session(session_id, actor)

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

    # --- requests -------------------------------------------------------------

    async def create_request(
        self,
        *,
        session_id: str,
        client_id: str,
        message: str,
        request_type: RequestType,
        options: Sequence[Option] = (),
        allow_text: bool = False,
        metadata: dict[str, Any] | None = None,
        timeout_seconds: int | None = None,
        on_timeout: OnTimeout = "reject",
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        actor: Actor,
    ) -> tuple[RequestView, bool]:
        """Create a request; with an idempotency key, a repeat returns the first one.

        Returns the request and whether it was created now (False for a repeat).
        The same key with a different body is a ``Conflict`` (409).
        """
        command = request_domain.CreateRequest(
            request_id=self.ids(),
            session_id=session_id,
            client_id=client_id,
            message=message,
            request_type=request_type,
            options=tuple(options),
            allow_text=allow_text,
            metadata=metadata or {},
            timeout_seconds=(
                self.default_timeout_seconds if timeout_seconds is None else timeout_seconds
            ),
            on_timeout=on_timeout,
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            now=self.clock(),
        )
        if idempotency_key is not None:
            earlier = await self._idempotent_repeat(command, actor)
            if earlier is not None:
                return earlier, False
        session_history = await self.store.read_stream(f"session-{session_id}")
        _check_tenant(session_history, actor, f"session-{session_id}")
        session_domain.ensure_active(
            session_domain.fold(r.event for r in session_history), session_id
        )
        if callback_url is not None and not self.allow_private_callbacks:
            await check_callback_url(callback_url)
        # A fresh id is a new stream: no read, and version 0 is the one to expect.
        events = request_domain.decide(command, request_domain.initial)
        try:
            (created,) = await self.store.append(
                f"request-{command.request_id}", 0, events, actor.meta()
            )
        except ConcurrencyError:
            # The one way a new stream conflicts: the same idempotency key won a race.
            earlier = await self._idempotent_repeat(command, actor)
            if earlier is None:
                raise
            return earlier, False
        return new_request_view(created), True

    async def _idempotent_repeat(
        self, command: request_domain.CreateRequest, actor: Actor
    ) -> RequestView | None:
        rows = await self.store.fetch(
            "SELECT request_id FROM requests WHERE tenant = ? AND idempotency_key = ?",
            (actor.tenant, command.idempotency_key),
        )
        if not rows:
            return None
        earlier_id = rows[0]["request_id"]
        state = request_domain.fold(
            r.event for r in await self.store.read_stream(f"request-{earlier_id}")
        )
        assert not isinstance(state, request_domain.NotCreated)
        earlier = state.request
        # Compare what the decider would record now with what it recorded then,
        # ignoring only what is new each time (id and times).
        (now,) = request_domain.decide(command, request_domain.initial)
        same_body = msgspec.structs.replace(
            now,
            request_id=earlier.request_id,
            created_at=earlier.created_at,
            expires_at=earlier.expires_at,
        )
        if same_body != earlier:
            raise Conflict(
                f"idempotency key {command.idempotency_key!r} was used for a different request",
                code="idempotency_conflict",
            )
        return await self.get_request(earlier_id, actor)

    async def get_request(self, request_id: str, actor: Actor) -> RequestView:
        rows = await self.store.fetch("SELECT * FROM requests WHERE request_id = ?", (request_id,))
        if not rows or rows[0]["tenant"] != actor.tenant:  # see get_session
            raise NotFound(f"request {request_id!r} not found", code="request_not_found")
        return request_view(rows[0])

    async def list_requests(
        self,
        actor: Actor,
        *,
        statuses: Sequence[str] = (),
        session_id: str | None = None,
        created_since: datetime | None = None,
        created_until: datetime | None = None,
        after: tuple[datetime, str] | None = None,
        soonest_expiry_first: bool = False,
        limit: int = 50,
    ) -> list[RequestView]:
        """The tenant's requests, newest first; ``after`` is the last (created_at, id) seen.

        ``created_since`` and ``created_until`` bound ``created_at`` (the end is
        exclusive). ``soonest_expiry_first`` orders an operator's queue instead:
        by ``expires_at``, requests that never expire last; it takes no ``after``.
        """
        if soonest_expiry_first and after is not None:
            raise ValueError("after pages the newest-first order only")
        where: list[str] = ["tenant = ?"]
        params: list[Any] = [actor.tenant]
        if statuses:
            where.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(statuses)
        if session_id is not None:
            where.append("session_id = ?")
            params.append(session_id)
        if created_since is not None:
            where.append("created_at >= ?")
            params.append(created_since)
        if created_until is not None:
            where.append("created_at < ?")
            params.append(created_until)
        if after is not None:
            where.append("(created_at < ? OR (created_at = ? AND request_id < ?))")
            params.extend([after[0], after[0], after[1]])
        order = (
            "expires_at IS NULL, expires_at, created_at, request_id"
            if soonest_expiry_first
            else "created_at DESC, request_id DESC"
        )
        rows = await self.store.fetch(
            f"SELECT * FROM requests WHERE {' AND '.join(where)} ORDER BY {order} LIMIT ?",
            (*params, limit),
        )
        return [request_view(row) for row in rows]

    async def answer(
        self,
        request_id: str,
        *,
        option: str | None = None,
        text: str | None = None,
        channel: Channel,
        actor: Actor,
    ) -> RequestView:
        """Record a human's answer; the first one wins, a different later one is a 409."""
        command = request_domain.AnswerRequest(
            request_id=request_id,
            responder=actor.id,
            option=option,
            text=text,
            channel=channel,
            now=self.clock(),
        )
        await self._on_request(command, actor)
        return await self.get_request(request_id, actor)

    async def cancel(self, request_id: str, reason: str | None, actor: Actor) -> RequestView:
        command = request_domain.CancelRequest(
            request_id=request_id, reason=reason, now=self.clock()
        )
        await self._on_request(command, actor)
        return await self.get_request(request_id, actor)

    async def expire(self, request_id: str, tenant: str) -> list[RecordedEvent]:
        """Expire a due request (the expirer's command); [] if a human got there first."""
        command = request_domain.ExpireRequest(request_id=request_id, now=self.clock())
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    # --- operator channels --------------------------------------------------------

    async def find_request(self, request_id: str) -> RequestView:
        """A request by id alone, for operator channels that act in the request's tenant.

        Only for callers that authorise by other means (the session's Telegram
        operator); agent-facing surfaces use :meth:`get_request`.
        """
        rows = await self.store.fetch("SELECT * FROM requests WHERE request_id = ?", (request_id,))
        if not rows:
            raise NotFound(f"request {request_id!r} not found", code="request_not_found")
        return request_view(rows[0])

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

    async def answer_as_telegram_user(
        self,
        request_id: str,
        telegram_user_id: int,
        *,
        option: str | None = None,
        text: str | None = None,
    ) -> RequestView:
        """Answer for a Telegram user, who must be the operator of the request's session.

        Anyone else's attempt is recorded as ``AnswerRefused`` and raised as
        ``Forbidden`` (``not_operator``); the request is left as it was.
        """
        view = await self.find_request(request_id)
        actor = Actor(id=f"telegram:{telegram_user_id}", tenant=view.tenant)
        if await self.telegram_operator(view.session_id) != telegram_user_id:
            command = request_domain.RefuseAnswer(
                request_id=request_id,
                responder=actor.id,
                channel="telegram",
                reason="not the session's operator",
                now=self.clock(),
            )
            await self._on_request(command, actor)
            raise Forbidden(
                "only the operator of this request's session may answer it", code="not_operator"
            )
        return await self.answer(
            request_id, option=option, text=text, channel="telegram", actor=actor
        )

    async def mark_delivered(
        self,
        request_id: str,
        tenant: str,
        *,
        channel: Channel,
        external_message_id: str | None = None,
        chat_id: int | None = None,
        shown_text: str | None = None,
        shown_options: tuple[str, ...] = (),
    ) -> list[RecordedEvent]:
        """Record that ``channel`` showed the request; raises if it was decided meanwhile."""
        command = request_domain.MarkDelivered(
            request_id=request_id,
            channel=channel,
            external_message_id=external_message_id,
            chat_id=chat_id,
            shown_text=shown_text,
            shown_options=shown_options,
            now=self.clock(),
        )
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    async def record_delivery_failure(
        self, request_id: str, tenant: str, *, channel: Channel, error: str, attempts: int
    ) -> list[RecordedEvent]:
        """Record that ``channel`` gave up delivering; ``[]`` if the request was decided."""
        command = request_domain.RecordDeliveryFailure(
            request_id=request_id,
            channel=channel,
            error=error,
            attempts=attempts,
            now=self.clock(),
        )
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    async def open_requests_for_telegram_user(
        self, telegram_user_id: int, limit: int = 20
    ) -> list[RequestView]:
        """Open requests of every session this Telegram user operates, oldest first."""
        rows = await self.store.fetch(
            "SELECT r.* FROM requests r JOIN sessions s ON s.session_id = r.session_id"
            " WHERE s.telegram_id = ? AND r.status IN ('pending', 'delivered')"
            " ORDER BY r.created_at, r.request_id LIMIT ?",
            (telegram_user_id, limit),
        )
        return [request_view(row) for row in rows]

    async def wait_for_decision(
        self,
        request_id: str,
        actor: Actor,
        wait_seconds: float,
        gone: Callable[[], bool] = lambda: False,
    ) -> RequestView:
        """The request once it is final, or as it is after ``wait_seconds``.

        Sleeps on the hub, never polls the database; ``gone`` is checked every
        second so a waiter whose client hung up is released.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        # Watch before reading: an answer committed between the read and the
        # wait still sets ``changed``.
        with self.hub.watch(f"request-{request_id}") as changed:
            view = await self.get_request(request_id, actor)
            while not view.final and not gone():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(changed.wait(), min(remaining, 1.0))
                except TimeoutError:
                    continue
                changed.clear()
                view = await self.get_request(request_id, actor)
        return view


def _check_tenant(history: list[RecordedEvent], actor: Actor, stream: str) -> None:
    # Another tenant's stream looks exactly like a missing one.
    if history and history[0].meta.tenant != actor.tenant:
        kind = stream.split("-", 1)[0]
        raise NotFound(f"{kind} {stream.split('-', 1)[1]!r} not found", code=f"{kind}_not_found")
