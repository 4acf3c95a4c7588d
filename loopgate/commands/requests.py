"""Request commands: create, answer, cancel, expire, record deliveries, and wait.

Every surface (REST, MCP, Telegram, the console) calls these. Each command
goes through :func:`loopgate.commands.base.execute` (decide on the stream's
state, append with the version read, retry on a conflict), which is how
"first answer wins" holds across processes.

Reads come from the ``requests`` projection, which the append updated in its
own transaction, so a read right after a command sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import msgspec

from loopgate.commands.approvals import (
    Approvals,
    PolicySource,
    Roster,
    as_asked_then,
    not_theirs,
    standing_grant,
)
from loopgate.commands.base import Actor, execute, new_id, require, utcnow
from loopgate.commands.callback_urls import check_callback_url
from loopgate.commands.sessions import Sessions
from loopgate.domain import request as request_domain
from loopgate.domain.action import fingerprint
from loopgate.domain.teams import (
    ANY_PRINCIPAL,
    allows,
    default_approvers,
    parse_approvers,
    route_match,
)
from loopgate.errors import ConcurrencyError, Conflict, Forbidden, NotFound
from loopgate.events import (
    Action,
    Channel,
    EscalationStep,
    OnTimeout,
    Option,
    RecordedEvent,
    RequestCreated,
    RequestType,
)
from loopgate.hub import Hub
from loopgate.limits import Limits
from loopgate.metrics import Metrics
from loopgate.store.base import EventStore
from loopgate.views import RequestView, decided_by, new_request_view, outcome_of, request_view
from loopgate.wire import CreateRequestBody

AGENT_REFUSAL = (
    "an agent API key cannot answer requests; answer as a person (the console, "
    "Telegram, a login token) or with an operator key"
)


class Requests:
    """The requests agents ask and humans decide, over one store and one hub."""

    def __init__(
        self,
        store: EventStore,
        hub: Hub,
        sessions: Sessions,
        *,
        default_timeout_seconds: int = 300,
        clock: Callable[[], datetime] = utcnow,
        ids: Callable[[], str] = new_id,
        allow_private_callbacks: bool = False,
        metrics: Metrics | None = None,
        limits: Limits | None = None,
        policies: PolicySource | None = None,
        roster: Roster | None = None,
    ) -> None:
        self.store, self.hub, self.sessions = store, hub, sessions
        self.approvals = Approvals(policies, roster)
        self.metrics = metrics or Metrics()
        self.limits = limits or Limits.unlimited()
        self.allow_private_callbacks = allow_private_callbacks
        self.default_timeout_seconds = default_timeout_seconds
        self.clock = clock
        self.ids = ids

    async def _on_request(
        self, command: request_domain.Command, actor: Actor
    ) -> list[RecordedEvent]:
        return await execute(
            self.store,
            f"request-{command.request_id}",
            request_domain.fold,
            request_domain.decide,
            command,
            actor,
        )

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
        approvers: Sequence[str] = (),
        quorum: int = 1,
        veto: bool = True,
        remind_every_seconds: int | None = None,
        warn_before_expiry_seconds: int | None = None,
        escalation: Sequence[EscalationStep] = (),
        action: Action | None = None,
        editable: bool = False,
        args_schema: dict[str, Any] | None = None,
        grantable: bool = False,
        actor: Actor,
    ) -> tuple[RequestView, bool]:
        """Create a request; with an idempotency key, a repeat returns the first one.

        Returns the request and whether it was created now (False for a repeat).
        The same key with a different body is a ``Conflict`` (409). Over the
        caller's ``limits.create_*`` bucket: ``TooManyRequests``, nothing appended.
        ``approvers`` names who may answer; without it, the session's Telegram
        operator if it has one, else every approver of the workspace.
        A live standing grant of the session covering ``action`` approves it at
        once (``decided_by`` ``policy``, ``grant:<id>``), unless a rule decided or
        the request needs a quorum.
        """
        await self.limits.take("create", actor.caller)
        require(actor, "request.create")
        routed = parse_approvers(approvers)
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
            quorum=quorum,
            veto=veto,
            requester=actor.user_id,
            remind_every_seconds=remind_every_seconds,
            warn_before_expiry_seconds=warn_before_expiry_seconds,
            escalation=tuple(
                msgspec.structs.replace(step, approvers=parse_approvers(step.approvers))
                for step in escalation
            ),
            action=action,
            editable=editable,
            args_schema=args_schema,
            grantable=grantable,
            now=self.clock(),
        )
        session = await self.sessions.get_session(session_id, actor)
        command = await self.approvals.under_policy(
            msgspec.structs.replace(
                command, approvers=routed or default_approvers(session.telegram_id)
            ),
            actor.tenant,
        )
        command = await self._under_grant(command, actor.tenant)
        if idempotency_key is not None:
            earlier = await self._idempotent_repeat(command, actor)
            if earlier is not None:
                return earlier, False
        if not session.active:
            await self.sessions.ensure_active(session_id, actor)
        if callback_url is not None and not self.allow_private_callbacks:
            await check_callback_url(callback_url)
        if command.quorum > 1 and command.decision is None:
            await self.approvals.check_quorum_reachable(command, actor.tenant)
        # A fresh id is a new stream: no read, and version 0 is the one to expect.
        events = request_domain.decide(command, request_domain.initial)
        try:
            created, *decided = await self.store.append(
                f"request-{command.request_id}", 0, events, actor.meta()
            )
        except ConcurrencyError:
            # The one way a new stream conflicts: the same idempotency key won a race.
            earlier = await self._idempotent_repeat(command, actor)
            if earlier is None:
                raise
            return earlier, False
        self.metrics.request_created()
        if decided:  # a rule decided it at once
            view = await self.get_request(command.request_id, actor)
            self._count_decision(view)
            return view, True
        return new_request_view(created), True

    async def _under_grant(
        self, command: request_domain.CreateRequest, tenant: str
    ) -> request_domain.CreateRequest:
        if command.action is None or command.decision is not None or command.quorum > 1:
            return command
        grant = await standing_grant(
            self.store,
            tenant,
            command.session_id,
            command.action,
            fingerprint(command.action),
            command.now,
        )
        return command if grant is None else msgspec.structs.replace(command, grant=grant)

    async def create_from_body(
        self, body: CreateRequestBody, actor: Actor, idempotency_key: str | None
    ) -> tuple[RequestView, bool]:
        """Create a request from a decoded API body (REST or MCP); True if it is new."""
        return await self.create_request(
            session_id=body.session_id,
            client_id=body.client_id,
            message=body.message,
            request_type=body.resolved_request_type(),
            options=body.option_list(),
            allow_text=bool(body.allow_text),
            metadata=body.metadata,
            timeout_seconds=body.timeout_seconds,
            on_timeout=body.on_timeout,
            callback_url=body.callback_url,
            idempotency_key=idempotency_key,
            approvers=body.approvers or (),
            quorum=body.quorum,
            veto=body.veto,
            remind_every_seconds=body.remind_every_seconds,
            warn_before_expiry_seconds=body.warn_before_expiry_seconds,
            escalation=body.escalation_steps(),
            action=None if body.action is None else body.action.to_action(),
            editable=body.editable,
            args_schema=body.args_schema,
            grantable=body.grantable,
            actor=actor,
        )

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
        now = request_domain.decide(command, request_domain.initial)[0]
        assert isinstance(now, RequestCreated)
        same_body = msgspec.structs.replace(
            now,
            request_id=earlier.request_id,
            created_at=earlier.created_at,
            expires_at=earlier.expires_at,
            grant=earlier.grant,  # a grant revoked or expired since does not change what was asked
        )
        same_body = as_asked_then(same_body, earlier)
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
        args: dict[str, Any] | None = None,
        grant: request_domain.GrantAsk | None = None,
    ) -> RequestView:
        """Record a human's answer; the first one wins, a different later one is a 409.

        ``args`` approves the request's action with the approver's edit of its
        args; ``grant`` also approves the session's matching actions for a while.

        The answer is recorded under ``actor.answers_as``. An actor without one
        (an agent API key) is refused on every surface alike: the attempt is
        recorded as ``AnswerRefused``, the request is left as it was, and
        ``Forbidden`` (``agent_cannot_answer``) is raised. An agent must never
        approve what it asked for. Over the caller's ``limits.answer_*`` bucket
        (refused answers count too): ``TooManyRequests``, nothing appended.
        """
        await self.limits.take("answer", actor.caller)
        refusal: Forbidden | None = None
        routed_by = None
        voters: int | None = None
        if actor.answers_as is None:
            refusal = Forbidden(AGENT_REFUSAL, code="agent_cannot_answer")
        elif actor.user_id is not None and not allows(actor.role, "request.answer"):
            refusal = Forbidden(
                f"the {actor.role or 'former member'} role cannot answer requests",
                code="role_cannot_answer",
            )
        else:
            view = await self.get_request(request_id, actor)
            approvers = await self.approvers_of(view)
            routed_by = route_match(approvers, actor.principals)
            # A decided request is the decider's to refuse (or a repeat to accept).
            if not view.final:
                refusal = not_theirs(view, actor, approvers, routed_by)
            if refusal is None and view.quorum > 1 and not view.veto:
                voters = await self.approvals.voters(view.tenant, approvers, view.requester)
        if refusal is not None:
            await self.refuse_answer(
                request_id,
                responder=actor.answers_as or actor.id,
                channel=channel,
                reason=refusal.code,
                tenant=actor.tenant,
                correlation_id=actor.correlation_id,
            )
            raise refusal
        command = request_domain.AnswerRequest(
            request_id=request_id,
            responder=actor.answers_as or actor.id,
            member=actor.user_id,
            voters=voters,
            option=option,
            text=text,
            channel=channel,
            now=self.clock(),
            # The open mode's anonymous caller answers anything: no selector applied.
            routed_by=None if routed_by == ANY_PRINCIPAL else routed_by,
            args=args,
            grant=grant,
            grant_id=None if grant is None else self.ids(),
            workspace=actor.tenant,
        )
        return await self._decide(command, actor)

    async def approvers_of(self, view: RequestView) -> tuple[str, ...]:
        """Who may answer: the request's approvers, or for a request made before
        routing, the session's Telegram operator, else every approver."""
        if view.approvers:
            return view.approvers
        telegram_id = await self.sessions.telegram_operator(view.tenant, view.session_id)
        return default_approvers(telegram_id)

    async def cancel(self, request_id: str, reason: str | None, actor: Actor) -> RequestView:
        require(actor, "request.create")
        command = request_domain.CancelRequest(
            request_id=request_id, reason=reason, now=self.clock()
        )
        return await self._decide(command, actor)

    async def remind(self, request_id: str, tenant: str, number: int) -> list[RecordedEvent]:
        """Record reminder ``number`` (from 1) once it is due; [] if sent already or decided."""
        command = request_domain.SendReminder(
            request_id=request_id, channel="system", number=number, now=self.clock()
        )
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    async def warn_expiry(self, request_id: str, tenant: str) -> list[RecordedEvent]:
        """Record the expiry warning once it is due; [] if warned already or decided."""
        command = request_domain.WarnExpiry(request_id=request_id, now=self.clock())
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    async def escalate(self, request_id: str, tenant: str, step: int) -> list[RecordedEvent]:
        """Fire escalation ``step`` once due; [] if it fired already or the request is decided.

        A request not yet due raises ``DomainError`` (``not_due``), as :meth:`expire` does.
        """
        command = request_domain.EscalateRequest(request_id=request_id, step=step, now=self.clock())
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    async def expire(self, request_id: str, tenant: str) -> list[RecordedEvent]:
        """Expire a due request (the expirer's command); [] if a human got there first."""
        command = request_domain.ExpireRequest(request_id=request_id, now=self.clock())
        recorded = await self._on_request(command, Actor(id="system", tenant=tenant))
        if recorded:
            self._count_decision(await self.find_request(request_id))
        return recorded

    async def _decide(self, command: request_domain.Command, actor: Actor) -> RequestView:
        """Run a deciding command and return the request as it is now."""
        recorded = await self._on_request(command, actor)
        view = await self.get_request(command.request_id, actor)
        if recorded:
            self._count_decision(view)
        return view

    def _count_decision(self, view: RequestView) -> None:
        # Counted by the process whose append decided it (a repeat appends
        # nothing), so each decision is counted once across processes.
        outcome, by = outcome_of(view), decided_by(view)
        if outcome is None or by is None or view.decided_at is None:
            return
        seconds = (view.decided_at - view.created_at).total_seconds()
        self.metrics.request_decided(outcome, by.channel or "unknown", seconds)

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

    async def refuse_answer(
        self,
        request_id: str,
        *,
        responder: str,
        channel: Channel,
        reason: str,
        tenant: str,
        correlation_id: str | None = None,
    ) -> None:
        """Record that ``responder`` tried to answer and may not; the request is unchanged."""
        command = request_domain.RefuseAnswer(
            request_id=request_id,
            responder=responder,
            channel=channel,
            reason=reason,
            now=self.clock(),
        )
        actor = Actor(id=responder, tenant=tenant, correlation_id=correlation_id)
        await self._on_request(command, actor)

    async def mark_delivered(
        self,
        request_id: str,
        tenant: str,
        *,
        channel: Channel,
        external_message_id: str | None = None,
        chat_id: int | None = None,
        address: str | None = None,
        conversation: str | None = None,
        routed_by: str | None = None,
        shown_text: str | None = None,
        shown_options: tuple[str, ...] = (),
    ) -> list[RecordedEvent]:
        """Record that ``channel`` showed the request; raises if it was decided meanwhile."""
        command = request_domain.MarkDelivered(
            request_id=request_id,
            channel=channel,
            external_message_id=external_message_id,
            chat_id=chat_id,
            address=address,
            conversation=conversation,
            routed_by=routed_by,
            shown_text=shown_text,
            shown_options=shown_options,
            now=self.clock(),
        )
        return await self._on_request(command, Actor(id="system", tenant=tenant))

    async def record_delivery_failure(
        self,
        request_id: str,
        tenant: str,
        *,
        channel: Channel,
        error: str,
        attempts: int,
        chat_id: int | None = None,
        address: str | None = None,
    ) -> list[RecordedEvent]:
        """Record that ``channel`` gave up delivering (to a chat or address); ``[]`` if decided."""
        command = request_domain.RecordDeliveryFailure(
            request_id=request_id,
            channel=channel,
            error=error,
            attempts=attempts,
            now=self.clock(),
            chat_id=chat_id,
            address=address,
        )
        return await self._on_request(command, Actor(id="system", tenant=tenant))

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
        # Only a wait holds the client's connection open, so only a wait takes a slot.
        slot = self.hub.park(actor.tenant) if wait_seconds > 0 else contextlib.nullcontext()
        # Watch before reading: an answer committed between the read and the
        # wait still sets ``changed``.
        with slot, self.hub.watch(f"request-{request_id}") as changed:
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
