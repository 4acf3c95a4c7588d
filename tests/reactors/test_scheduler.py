"""The scheduler: reminders, the expiry warning and escalation steps happen on time, once.

Most tests run the scheduler on a fake clock: a timer's delay is computed from
that clock, so moving it past a due time and re-arming (what a lease
acquisition does) fires exactly what is due, at once, and nothing else. The
whole app, on real (short) seconds, is tested in tests/web/test_escalation.py
and tests/telegram/test_escalation.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.domain.teams import ANY_PRINCIPAL
from loopgate.events import (
    EscalationStep,
    ExpiryWarned,
    ReminderSent,
    RequestEscalated,
)
from loopgate.hub import Hub
from loopgate.reactors.lease import SCHEDULER_LEASE, Lease, lease_for
from loopgate.reactors.scheduler import Scheduler
from loopgate.store.base import EventStore
from loopgate.store.postgres import PostgresStore

SETTLE = 10.0  # a generous bound for something that should take milliseconds
ANYONE = frozenset({ANY_PRINCIPAL})
OPERATOR = Actor(
    id="operator", tenant="local", answers_as="operator", role="approver", principals=ANYONE
)
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUT = 600
EVERY = 60


async def until(condition: Callable[[], bool], within: float = SETTLE) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


class Runtime:
    """Hub, service and scheduler over one store, as the app wires them."""

    def __init__(self, store: EventStore, clock: Clock, lease: Lease | None = None) -> None:
        self.store, self.clock = store, clock
        self.hub = Hub(store)
        self.service = Requests(store, self.hub, Sessions(store, clock=clock), clock=clock)
        self.scheduler = Scheduler(self.service, self.hub, lease)

    async def start(self) -> None:
        await self.hub.start()
        await self.scheduler.start()

    async def stop(self) -> None:
        await self.scheduler.stop()
        await self.hub.stop()

    async def create(self, **fields: Any) -> str:
        await self.service.sessions.register_session("s1", "agent", None, OPERATOR)
        view, _ = await self.service.create_request(
            session_id="s1",
            client_id="agent",
            message="Deploy?",
            request_type="confirmation",
            timeout_seconds=TIMEOUT,
            actor=OPERATOR,
            **fields,
        )
        await self.settle()
        return view.request_id

    async def settle(self) -> None:
        """Until the hub handed every committed event to the scheduler."""
        head = await self.store.head()
        await until(lambda: self.hub.position >= head)

    async def fired(self, request_id: str, kind: type[Any]) -> list[Any]:
        stream = await self.store.read_stream(f"request-{request_id}")
        return [r.event for r in stream if isinstance(r.event, kind)]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runtime(store: EventStore, clock: Clock) -> AsyncIterator[Runtime]:
    runtime = Runtime(store, clock)
    await runtime.start()
    yield runtime
    await runtime.stop()


async def wait_for(runtime: Runtime, request_id: str, kind: type[Any], count: int) -> list[Any]:
    """The request's events of ``kind`` once there are ``count``, waiting on the hub."""
    async with asyncio.timeout(SETTLE):
        with runtime.hub.watch(f"request-{request_id}") as changed:
            while len(await runtime.fired(request_id, kind)) < count:
                await changed.wait()
                changed.clear()
    await asyncio.sleep(0.05)  # anything fired twice would be in by now
    return await runtime.fired(request_id, kind)


async def test_creation_arms_the_first_reminder_the_warning_and_each_step(
    runtime: Runtime,
) -> None:
    request_id = await runtime.create(
        remind_every_seconds=EVERY,
        warn_before_expiry_seconds=EVERY,
        escalation=[
            EscalationStep(after_seconds=120, approvers=("group:leads",)),
            EscalationStep(after_seconds=TIMEOUT, approvers=("group:heads",)),  # at the deadline
        ],
    )

    assert runtime.scheduler.armed_for(request_id) == {
        ("remind", 1),
        ("warn", 0),
        ("escalate", 0),  # step 1 comes due as the request expires: never armed
    }


async def test_reminders_one_and_two_are_recorded_once_each(runtime: Runtime, clock: Clock) -> None:
    request_id = await runtime.create(remind_every_seconds=EVERY)

    clock.at(2 * EVERY + 5)  # reminders 1 and 2 are due, 3 is not
    await runtime.scheduler.rearm()
    reminders = await wait_for(runtime, request_id, ReminderSent, count=2)

    assert [r.number for r in reminders] == [1, 2]
    assert runtime.scheduler.armed_for(request_id) == {("remind", 3)}
    await runtime.scheduler.rearm()  # a lease acquired again re-arms from the projection
    assert await runtime.service.remind(request_id, "local", 1) == []  # a late timer elsewhere
    await runtime.settle()
    assert [r.number for r in await runtime.fired(request_id, ReminderSent)] == [1, 2]
    assert (await runtime.service.get_request(request_id, OPERATOR)).reminders == 2


async def test_the_expiry_warning_is_recorded_once(runtime: Runtime, clock: Clock) -> None:
    request_id = await runtime.create(warn_before_expiry_seconds=EVERY)

    clock.at(TIMEOUT - EVERY)
    await runtime.scheduler.rearm()
    (warned,) = await wait_for(runtime, request_id, ExpiryWarned, count=1)

    assert warned.warned_at == clock.now
    assert warned.expires_at == T0 + timedelta(seconds=TIMEOUT)
    await runtime.scheduler.rearm()
    assert runtime.scheduler.armed_for(request_id) == set()
    assert await runtime.service.warn_expiry(request_id, "local") == []
    assert len(await runtime.fired(request_id, ExpiryWarned)) == 1
    view = await runtime.service.get_request(request_id, OPERATOR)
    assert view.warned_at == clock.now


async def test_a_timer_that_fires_early_is_rearmed(runtime: Runtime, clock: Clock) -> None:
    request_id = await runtime.create(
        escalation=[EscalationStep(after_seconds=EVERY, approvers=("group:leads",))]
    )
    clock.at(EVERY - 0.02)  # the loop's clock ran ahead of the wall clock
    await runtime.scheduler.rearm()
    await asyncio.sleep(0.1)  # fired, refused as not due, re-armed
    assert await runtime.fired(request_id, RequestEscalated) == []
    assert runtime.scheduler.armed_for(request_id) == {("escalate", 0)}

    clock.at(EVERY)
    (escalated,) = await wait_for(runtime, request_id, RequestEscalated, count=1)
    assert escalated.escalated_at == clock.now


async def test_a_decided_request_fires_nothing_more(runtime: Runtime, clock: Clock) -> None:
    request_id = await runtime.create(
        remind_every_seconds=EVERY,
        warn_before_expiry_seconds=EVERY,
        escalation=[EscalationStep(after_seconds=EVERY, approvers=("group:leads",))],
    )
    assert runtime.scheduler.armed == 3

    await runtime.service.answer(request_id, option="Approve", channel="api", actor=OPERATOR)
    await runtime.settle()
    assert runtime.scheduler.armed == 0

    clock.at(TIMEOUT - 1)  # everything would be due
    await runtime.scheduler.rearm()
    assert runtime.scheduler.armed == 0
    assert await runtime.service.escalate(request_id, "local", 0) == []  # a late timer elsewhere
    stream = [r.type for r in await runtime.store.read_stream(f"request-{request_id}")]
    assert stream == ["request.created", "request.response_received"]


async def test_nothing_is_due_after_the_deadline(runtime: Runtime, clock: Clock) -> None:
    request_id = await runtime.create(
        remind_every_seconds=EVERY,
        escalation=[EscalationStep(after_seconds=EVERY, approvers=("group:leads",))],
    )
    clock.at(TIMEOUT + 1)  # past the deadline; the expirer (not run here) has not expired it yet
    await runtime.scheduler.rearm()
    await until(lambda: runtime.scheduler.armed_for(request_id) == set())
    await asyncio.sleep(0.05)

    # Refused as request_expired: done, not retried.
    assert await runtime.fired(request_id, ReminderSent) == []
    assert await runtime.fired(request_id, RequestEscalated) == []
    assert runtime.scheduler.armed == 0


async def test_a_restart_mid_way_still_escalates_exactly_once(
    store: EventStore, clock: Clock
) -> None:
    step = EscalationStep(after_seconds=EVERY, approvers=("group:leads",))
    first = Runtime(store, clock)
    await first.start()
    request_id = await first.create(escalation=[step])
    assert first.scheduler.armed_for(request_id) == {("escalate", 0)}
    clock.at(EVERY / 2)
    await first.stop()  # mid-way: the step is not due yet
    assert first.scheduler.armed == 0

    clock.at(EVERY + 1)  # it came due while no scheduler ran
    second = Runtime(store, clock)
    await second.start()  # re-arms from the projection: due, so it fires at once
    try:
        (escalated,) = await wait_for(second, request_id, RequestEscalated, count=1)
        assert (escalated.step, escalated.approvers) == (0, ("group:leads",))
    finally:
        await second.stop()

    third = Runtime(store, clock)
    await third.start()
    try:
        assert third.scheduler.armed_for(request_id) == set()  # the step fired: not armed again
        assert len(await third.fired(request_id, RequestEscalated)) == 1
        view = await third.service.get_request(request_id, OPERATOR)
        assert [(e.step, e.approvers) for e in view.escalations] == [(0, ("group:leads",))]
        assert "group:leads" in view.approvers
    finally:
        await third.stop()


# Postgres only: SQLite has one process per file, so its lease is always held.
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_two_schedulers_with_real_leases_escalate_once(
    open_test_store: Callable[[], Any], clock: Clock
) -> None:
    stores: list[EventStore] = [await open_test_store(), await open_test_store()]
    assert isinstance(stores[0], PostgresStore)
    runtimes = [
        Runtime(store, clock, lease_for(store, "scheduler", SCHEDULER_LEASE)) for store in stores
    ]
    for runtime in runtimes:
        await runtime.start()
    try:
        holders = [r for r in runtimes if r.scheduler.held]
        assert len(holders) == 1
        (holder,) = holders
        (other,) = [r for r in runtimes if r is not holder]
        request_id = await other.create(
            remind_every_seconds=EVERY,
            escalation=[EscalationStep(after_seconds=EVERY, approvers=("group:leads",))],
        )
        await holder.settle()
        assert holder.scheduler.armed_for(request_id) == {("remind", 1), ("escalate", 0)}
        assert other.scheduler.armed == 0  # it does not hold the lease

        clock.at(EVERY + 1)
        # Both fire at once, as a holder and one that held the lease a moment ago would.
        results = await asyncio.gather(
            holder.service.escalate(request_id, "local", 0),
            other.service.escalate(request_id, "local", 0),
            holder.scheduler.rearm(),
        )
        assert sum(len(result or []) for result in results[:2]) <= 1
        (escalated,) = await wait_for(holder, request_id, RequestEscalated, count=1)
        assert escalated.step == 0

        await holder.stop()  # the lease goes to the other process, which re-arms
        await until(lambda: other.scheduler.held, within=SETTLE)
        await wait_for(other, request_id, ReminderSent, count=1)
        assert other.scheduler.armed_for(request_id) == {("remind", 2)}
        assert len(await other.fired(request_id, RequestEscalated)) == 1
    finally:
        for runtime in runtimes:
            await runtime.stop()
