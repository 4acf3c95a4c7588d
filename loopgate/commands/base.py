"""What every command handler shares: who acts, new ids, the clock, and decide-then-append.

A command reads its stream, folds it, asks the pure decider for events and
appends them with the version it read (:func:`execute`). A stale version means
someone else appended in between; the handler re-reads and decides again, and
the decider then says what the second writer gets (a no-op, or
``AlreadyDecided``). That is how "first answer wins" holds across processes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec

from loopgate.domain.teams import Permission, allows
from loopgate.errors import ConcurrencyError, Forbidden, NotFound
from loopgate.events import Event, Meta, RecordedEvent, Role
from loopgate.store.base import EventStore

APPEND_ATTEMPTS = 5
ANONYMOUS = "anonymous"

S = TypeVar("S")
C = TypeVar("C")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return str(uuid.uuid4())


class Actor(msgspec.Struct, frozen=True, kw_only=True):
    """Who is acting, for whom, under which HTTP request, and whether they may answer.

    ``id`` goes into every event's :class:`Meta` (``apikey:<id>`` for a key).
    ``answers_as`` is who an answer by this actor is recorded under
    (``ResponseReceived.responder``, so ``decided_by.id``), or None for an
    actor that may not answer at all: an agent API key, the system. The
    credential decides it once, where it is checked (``web/auth.py`` and the
    account service): a person answers as themselves, an operator key as the
    user who made it, while its events still name the key. None is the
    default so that a new kind of caller cannot answer until someone says so.

    ``tenant`` is the workspace acted in. ``user_id`` and ``role`` are the
    member behind the credential (None for the system or an outside Telegram
    operator); a key acts with its member's role. ``principals`` are the
    approver selectors the actor answers to (:func:`loopgate.domain.teams.principals_for`):
    a request is theirs to answer only if one of its ``approvers`` is among them.
    """

    id: str = ANONYMOUS
    tenant: str = "local"
    correlation_id: str | None = None
    answers_as: str | None = None
    user_id: str | None = None
    role: Role | None = None
    principals: frozenset[str] = frozenset()
    # The client's address, for an anonymous caller: anonymous callers are told
    # apart by it alone (the rate limits' key). Never recorded in an event.
    address: str | None = None

    def meta(self) -> Meta:
        return Meta(actor=self.id, tenant=self.tenant, correlation_id=self.correlation_id)

    @property
    def caller(self) -> str:
        """Who counts against a rate limit: the credential, or an anonymous caller's address."""
        return f"address:{self.address}" if self.id == ANONYMOUS else self.id


def require(actor: Actor, permission: Permission) -> None:
    """``Forbidden`` (``role_forbids``) unless the actor's role allows ``permission``."""
    if not allows(actor.role, permission):
        who = f"the {actor.role} role" if actor.role else "a caller with no role here"
        raise Forbidden(f"{who} may not do {permission}", code="role_forbids")


async def execute(
    store: EventStore,
    stream: str,
    fold: Callable[[Iterable[Event]], S],
    decide: Callable[[C, S], list[Event]],
    command: C,
    actor: Actor,
) -> list[RecordedEvent]:
    """Decide on the stream's current state and append; retry on a stale version."""
    for attempt in range(APPEND_ATTEMPTS):
        history = await store.read_stream(stream)
        check_tenant(history, actor, stream)
        events = decide(command, fold(r.event for r in history))
        if not events:
            return []
        try:
            return await store.append(
                stream, history[-1].version if history else 0, events, actor.meta()
            )
        except ConcurrencyError:
            if attempt == APPEND_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def check_tenant(history: list[RecordedEvent], actor: Actor, stream: str) -> None:
    """Refuse another tenant's stream, and make it look exactly like a missing one."""
    if history and history[0].meta.tenant != actor.tenant:
        kind = stream.split("-", 1)[0]
        raise NotFound(f"{kind} {stream.split('-', 1)[1]!r} not found", code=f"{kind}_not_found")
