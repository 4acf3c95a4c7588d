"""The command handlers: retries on a stale version, tenants, idempotency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopgate.commands.base import APPEND_ATTEMPTS, Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions, session_stream
from loopgate.domain.teams import ANY_PRINCIPAL
from loopgate.errors import AlreadyDecided, ConcurrencyError, Conflict, NotFound
from loopgate.events import Event, Meta, RecordedEvent, RequestCreated, ResponseReceived
from loopgate.hub import Hub
from loopgate.store.base import EventStore

# People (a login token, the console): they may answer.
ANYONE = frozenset({ANY_PRINCIPAL})  # routing is tested in tests/web/test_role_matrix.py
ALICE = Actor(id="alice", tenant="a", answers_as="alice", role="approver", principals=ANYONE)
BOB = Actor(id="bob", tenant="b", answers_as="bob", role="approver", principals=ANYONE)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(store: EventStore, clock: Clock) -> AsyncIterator[Requests]:
    hub = Hub(store)
    await hub.start()
    yield Requests(store, hub, Sessions(store, clock=clock), clock=clock)
    await hub.stop()


async def open_request(service: Requests, actor: Actor = ALICE, **fields: Any) -> str:
    await service.sessions.register_session("s1", "agent", None, actor)
    view, created = await service.create_request(
        session_id="s1",
        client_id="agent",
        message="Deploy?",
        request_type="confirmation",
        actor=actor,
        **fields,
    )
    assert created
    return view.request_id


def types(records: Sequence[RecordedEvent]) -> list[str]:
    return [r.type for r in records]


class ConflictingAppends:
    """Wraps ``store.append`` so that chosen appends first lose a race.

    ``before`` runs right before the real append of the next ``times`` calls to
    ``stream`` (e.g. another writer's append, which makes the version stale).
    Without it, the call fails with ``ConcurrencyError`` as a lost race would.
    """

    def __init__(self, store: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = store.append
        self.stream: str | None = None
        self.times = 0
        self.calls = 0
        self.before: Any = None
        monkeypatch.setattr(store, "append", self)

    async def __call__(
        self, stream: str, expected_version: int | None, events: Sequence[Event], meta: Meta
    ) -> list[RecordedEvent]:
        if stream == self.stream:
            self.calls += 1
            if self.times > 0:
                self.times -= 1
                if self.before is None:
                    raise ConcurrencyError(stream, expected_version, (expected_version or 0) + 1)
                await self.before()
        return await self.real(stream, expected_version, events, meta)


async def test_a_conflicting_first_attempt_is_retried_into_one_decision(
    store: EventStore, service: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = await open_request(service)
    appends = ConflictingAppends(store, monkeypatch)
    appends.stream, appends.times = f"request-{request_id}", 1

    view = await service.answer(request_id, option="Approve", channel="api", actor=ALICE)

    assert appends.calls == 2
    assert (view.status, view.approved, view.responder) == ("answered", True, "alice")
    stream = await store.read_stream(f"request-{request_id}")
    assert types(stream) == ["request.created", "request.response_received"]


async def test_losing_to_the_same_answer_is_a_no_op(
    store: EventStore, service: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A replayed Telegram update racing the first delivery of the same answer.
    request_id = await open_request(service)
    appends = ConflictingAppends(store, monkeypatch)

    async def same_answer_first() -> None:
        await appends.real(
            f"request-{request_id}",
            1,
            [
                ResponseReceived(
                    request_id=request_id,
                    responder="alice",
                    option="Approve",
                    approved=True,
                    channel="api",
                    responded_at=service.clock(),
                )
            ],
            ALICE.meta(),
        )

    appends.stream, appends.times, appends.before = f"request-{request_id}", 1, same_answer_first

    view = await service.answer(request_id, option="Approve", channel="api", actor=ALICE)

    assert view.status == "answered"
    assert appends.calls == 1  # the retry decided there was nothing to append
    stream = await store.read_stream(f"request-{request_id}")
    assert types(stream) == ["request.created", "request.response_received"]


async def test_losing_to_another_answer_is_already_decided(
    store: EventStore, service: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = await open_request(service)
    appends = ConflictingAppends(store, monkeypatch)

    async def rejection_first() -> None:
        appends.stream = None  # the competing writer goes straight through
        await service.answer(request_id, option="Reject", channel="telegram", actor=ALICE)
        appends.stream = f"request-{request_id}"

    appends.stream, appends.times, appends.before = f"request-{request_id}", 1, rejection_first

    with pytest.raises(AlreadyDecided):
        await service.answer(request_id, option="Approve", channel="api", actor=ALICE)

    view = await service.get_request(request_id, ALICE)
    assert (view.status, view.approved, view.response) == ("answered", False, "Reject")
    stream = await store.read_stream(f"request-{request_id}")
    assert types(stream) == ["request.created", "request.response_received"]


async def test_endless_conflicts_give_up_with_the_concurrency_error(
    store: EventStore, service: Requests, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_id = await open_request(service)
    appends = ConflictingAppends(store, monkeypatch)
    appends.stream, appends.times = f"request-{request_id}", APPEND_ATTEMPTS

    with pytest.raises(ConcurrencyError):
        await service.answer(request_id, option="Approve", channel="api", actor=ALICE)

    assert appends.calls == APPEND_ATTEMPTS
    assert (await service.get_request(request_id, ALICE)).status == "pending"


async def test_concurrent_answers_make_exactly_one_decision(
    store: EventStore, service: Requests
) -> None:
    request_id = await open_request(service)
    results = await asyncio.gather(
        *(
            service.answer(request_id, option=option, channel="api", actor=ALICE)
            for option in ("Approve", "Reject") * 3
        ),
        return_exceptions=True,
    )
    stream = await store.read_stream(f"request-{request_id}")
    decisions = [r.event for r in stream if isinstance(r.event, ResponseReceived)]
    assert len(decisions) == 1
    winner = decisions[0].option
    for option, result in zip(("Approve", "Reject") * 3, results, strict=True):
        if option == winner:
            assert not isinstance(result, BaseException), result
            assert result.response == winner
        else:
            assert isinstance(result, AlreadyDecided)


async def test_another_tenant_cannot_see_or_touch_a_request_or_session_of_its_id(
    store: EventStore, service: Requests
) -> None:
    request_id = await open_request(service, ALICE)

    with pytest.raises(NotFound) as caught:
        await service.get_request(request_id, BOB)
    assert caught.value.code == "request_not_found"
    request_commands: list[Callable[[], Awaitable[object]]] = [
        lambda: service.answer(request_id, option="Approve", channel="api", actor=BOB),
        lambda: service.cancel(request_id, "not mine", BOB),
        lambda: service.wait_for_decision(request_id, BOB, 0),
    ]
    for command in request_commands:
        with pytest.raises(NotFound) as caught:
            await command()
        assert caught.value.code == "request_not_found"
    assert await service.list_requests(BOB) == []

    session_commands: list[Callable[[], Awaitable[object]]] = [
        lambda: service.sessions.get_session("s1", BOB),
        lambda: service.sessions.deactivate_session("s1", BOB),
        lambda: service.create_request(
            session_id="s1", client_id="agent", message="Mine?", request_type="input", actor=BOB
        ),
    ]
    for session_command in session_commands:
        with pytest.raises(NotFound) as caught:
            await session_command()
        assert caught.value.code == "session_not_found"

    # Nothing of tenant "a" changed, and nothing was written for "b".
    view = await service.get_request(request_id, ALICE)
    assert (view.status, view.version) == ("pending", 1)
    assert (await service.sessions.get_session("s1", ALICE)).active
    assert all(r.meta.tenant == "a" for r in await store.read_all())


async def test_an_idempotent_repeat_returns_the_same_request(
    store: EventStore, service: Requests, clock: Clock
) -> None:
    first_id = await open_request(service, idempotency_key="deploy-42", metadata={"pr": 42})
    clock.now += timedelta(seconds=5)
    first = await service.get_request(first_id, ALICE)

    again, created = await service.create_request(
        session_id="s1",
        client_id="agent",
        message="Deploy?",
        request_type="confirmation",
        metadata={"pr": 42},
        idempotency_key="deploy-42",
        actor=ALICE,
    )

    assert not created
    assert again == first
    created_events = [r for r in await store.read_all() if isinstance(r.event, RequestCreated)]
    assert len(created_events) == 1


async def test_the_same_key_with_another_body_is_a_conflict(
    store: EventStore, service: Requests
) -> None:
    await open_request(service, idempotency_key="deploy-42")
    with pytest.raises(Conflict) as caught:
        await service.create_request(
            session_id="s1",
            client_id="agent",
            message="Deploy to production?",
            request_type="confirmation",
            idempotency_key="deploy-42",
            actor=ALICE,
        )
    assert caught.value.code == "idempotency_conflict"


async def test_idempotency_keys_are_per_tenant(store: EventStore, service: Requests) -> None:
    ours = await open_request(service, ALICE, idempotency_key="k")
    await service.sessions.register_session("s2", "agent", None, BOB)
    theirs, created = await service.create_request(
        session_id="s2",
        client_id="agent",
        message="Deploy?",
        request_type="confirmation",
        idempotency_key="k",
        actor=BOB,
    )
    assert created
    assert theirs.request_id != ours


async def test_concurrent_creates_with_one_key_make_one_request(
    store: EventStore, service: Requests
) -> None:
    await service.sessions.register_session("s1", "agent", None, ALICE)
    results = await asyncio.gather(
        *(
            service.create_request(
                session_id="s1",
                client_id="agent",
                message="Deploy?",
                request_type="confirmation",
                idempotency_key="once",
                actor=ALICE,
            )
            for _ in range(4)
        )
    )
    assert len({view.request_id for view, _ in results}) == 1
    assert sorted(created for _, created in results) == [False, False, False, True]
    created_events = [r for r in await store.read_all() if isinstance(r.event, RequestCreated)]
    assert len(created_events) == 1


async def test_a_repeated_registration_changes_nothing(
    store: EventStore, service: Requests
) -> None:
    first, changed = await service.sessions.register_session("s1", "agent", 7, ALICE)
    again, changed_again = await service.sessions.register_session("s1", "agent", 7, ALICE)
    assert (changed, changed_again) == (True, False)
    assert again == first
    assert len(await store.read_stream(session_stream("a", "s1"))) == 1


async def test_the_default_timeout_comes_from_the_service(store: EventStore) -> None:
    hub = Hub(store)
    clock = Clock()
    service = Requests(
        store, hub, Sessions(store, clock=clock), default_timeout_seconds=90, clock=clock
    )
    request_id = await open_request(service)
    view = await service.get_request(request_id, ALICE)
    assert view.timeout_seconds == 90
    assert view.expires_at == clock.now + timedelta(seconds=90)
    never = await open_request(service, timeout_seconds=0)
    assert (await service.get_request(never, ALICE)).expires_at is None


async def test_reads_right_after_concurrent_writes_see_them(service: Requests) -> None:
    # Under load, a read sharing the SQLite reader connection with other reads
    # once kept an old snapshot open and missed the commit it followed.
    request_ids = await asyncio.gather(*(open_request(service) for _ in range(64)))
    views = await asyncio.gather(*(service.get_request(rid, ALICE) for rid in request_ids))
    assert [v.request_id for v in views] == request_ids
    answered = await asyncio.gather(
        *(service.answer(rid, option="Approve", channel="api", actor=ALICE) for rid in request_ids)
    )
    assert {v.status for v in answered} == {"answered"}


async def test_lists_requests_created_within_a_time_range(service: Requests, clock: Clock) -> None:
    early = await open_request(service)
    clock.now += timedelta(hours=1)
    middle = await open_request(service)
    clock.now += timedelta(hours=1)
    late = await open_request(service)
    start = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)

    async def listed(**bounds: datetime) -> list[str]:
        return [v.request_id for v in await service.list_requests(ALICE, **bounds)]

    assert await listed(created_since=start + timedelta(hours=1)) == [late, middle]
    assert await listed(created_until=start + timedelta(hours=1)) == [early]  # the end is open
    assert await listed(
        created_since=start + timedelta(minutes=30), created_until=start + timedelta(hours=2)
    ) == [middle]


async def test_lists_a_queue_soonest_expiry_first_with_the_never_expiring_last(
    service: Requests, clock: Clock
) -> None:
    never = await open_request(service, timeout_seconds=0)
    slow = await open_request(service, timeout_seconds=3600)
    clock.now += timedelta(minutes=1)
    soon = await open_request(service, timeout_seconds=60)
    queue = await service.list_requests(ALICE, soonest_expiry_first=True)
    assert [v.request_id for v in queue] == [soon, slow, never]
    with pytest.raises(ValueError):
        await service.list_requests(ALICE, soonest_expiry_first=True, after=(clock.now, soon))


async def test_lists_the_tenants_sessions_active_first(service: Requests, clock: Clock) -> None:
    await service.sessions.register_session("old", "agent", None, ALICE)
    clock.now += timedelta(minutes=1)
    await service.sessions.register_session("gone", "agent", 7, ALICE)
    await service.sessions.deactivate_session("gone", ALICE)
    clock.now += timedelta(minutes=1)
    await service.sessions.register_session("new", "agent", None, ALICE)
    await service.sessions.register_session("bobs", "agent", None, BOB)
    listed = await service.sessions.list_sessions(ALICE)
    assert [(s.session_id, s.active) for s in listed] == [
        ("new", True),
        ("old", True),
        ("gone", False),
    ]
    assert [s.session_id for s in await service.sessions.list_sessions(BOB)] == ["bobs"]
