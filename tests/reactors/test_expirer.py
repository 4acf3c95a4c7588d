"""The expirer: a request nobody answers in time is decided by its ``on_timeout`` policy.

The HTTP tests run the whole app (hub, service, expirer) on each store and wait
for real one-second timeouts; the races run the expirer on a fake clock and arm
its timers by hand, so they are exact and instant.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.domain.teams import ANY_PRINCIPAL
from loopgate.errors import RequestClosed
from loopgate.events import (
    Event,
    Meta,
    RecordedEvent,
    RequestDelivered,
    RequestExpired,
    ResponseReceived,
)
from loopgate.hub import Hub
from loopgate.reactors import expirer as expirer_module
from loopgate.reactors.expirer import Expirer
from loopgate.store.base import EventStore
from loopgate.web.keys import EXPIRER

Client = TestClient[Any, Any]
FINAL_TYPES = ("request.response_received", "request.cancelled", "request.expired")
SETTLE = 5.0  # a generous bound for something that should take milliseconds
LATE = 1.0  # how late after its deadline an expiry may be, on a loaded CI machine
ANYONE = frozenset({ANY_PRINCIPAL})  # routing is tested in tests/web/test_role_matrix.py
OPERATOR = Actor(
    id="operator", tenant="local", answers_as="operator", role="approver", principals=ANYONE
)


async def until(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def finals(records: Sequence[RecordedEvent]) -> list[str]:
    return [r.type for r in records if r.type in FINAL_TYPES]


# --- over HTTP, on real time --------------------------------------------------


async def create(client: Client, **fields: Any) -> dict[str, Any]:
    response = await client.post(
        "/hitl/register", json={"session_id": "s1", "client_id": "agent", "telegram_id": 1}
    )
    assert response.status == 200, await response.text()
    response = await client.post(
        "/v1/requests",
        json={
            "session_id": "s1",
            "client_id": "agent",
            "message": "Deploy?",
            "request_type": "confirmation",
            **fields,
        },
    )
    assert response.status == 201, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def get_json(client: Client, url: str) -> dict[str, Any]:
    response = await client.get(url)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def parse(moment: str) -> datetime:
    return datetime.fromisoformat(moment)


async def test_a_timeout_rejects_by_default_and_wakes_a_long_poll_at_once(
    client: Client, store: EventStore
) -> None:
    created = await create(client, timeout_seconds=1)
    assert created["on_timeout"] == "reject"
    request_id = created["request_id"]

    started = time.monotonic()
    polled = await get_json(client, f"/hitl/poll?request_id={request_id}&wait=5")
    waited = time.monotonic() - started

    assert 0.5 < waited < 1 + LATE, waited  # woken by the expiry, not by the 5 s wait
    assert polled["status"] == "timeout"
    assert polled["completed"] is True
    assert polled["approved"] is False
    assert polled["response"] == ""

    view = await get_json(client, f"/v1/requests/{request_id}")
    assert view["status"] == "expired"
    assert view["outcome"] == "expired"
    assert view["approved"] is False
    assert view["response"] is None
    assert view["decided_by"] == {"kind": "policy", "id": "on_timeout:reject", "channel": "system"}
    late = parse(view["decided_at"]) - parse(view["expires_at"])
    assert timedelta(0) <= late < timedelta(seconds=LATE)

    stream = await store.read_stream(f"request-{request_id}")
    assert finals(stream) == ["request.expired"]
    assert stream[-1].meta.actor == "system"
    assert client.app[EXPIRER].armed == 0


async def test_on_timeout_approve_approves(client: Client) -> None:
    created = await create(client, timeout_seconds=1, on_timeout="approve")
    request_id = created["request_id"]

    view = await get_json(client, f"/v1/requests/{request_id}?wait=5")

    assert view["status"] == "expired"
    assert view["outcome"] == "expired"
    assert view["approved"] is True
    assert view["decided_by"]["kind"] == "policy"
    assert view["decided_by"]["id"] == "on_timeout:approve"
    polled = await get_json(client, f"/hitl/poll?request_id={request_id}")
    assert (polled["status"], polled["completed"], polled["approved"]) == ("timeout", True, True)


async def test_answering_or_cancelling_after_expiry_is_410(
    client: Client, store: EventStore
) -> None:
    request_id = (await create(client, timeout_seconds=1))["request_id"]
    polled = await get_json(client, f"/hitl/poll?request_id={request_id}&wait=5")
    assert polled["status"] == "timeout"

    for url, body in (
        (f"/v1/requests/{request_id}/response", {"option": "Approve"}),
        (f"/v1/requests/{request_id}/cancel", {}),
    ):
        response = await client.post(url, json=body)
        assert response.status == 410, await response.text()
        assert (await response.json())["error"]["code"] == "request_expired"
    response = await client.post("/hitl/cancel", json={"request_id": request_id})
    assert response.status == 410

    stream = await store.read_stream(f"request-{request_id}")
    assert finals(stream) == ["request.expired"]
    view = await get_json(client, f"/v1/requests/{request_id}")
    assert (view["status"], view["decided_by"]["kind"]) == ("expired", "policy")


async def test_answered_and_cancelled_requests_are_disarmed(client: Client) -> None:
    expirer = client.app[EXPIRER]
    assert expirer.armed == 0
    answered = (await create(client, timeout_seconds=300))["request_id"]
    cancelled = (await create(client, timeout_seconds=300))["request_id"]
    await until(lambda: expirer.armed == 2)

    response = await client.post(f"/v1/requests/{answered}/response", json={"option": "Approve"})
    assert response.status == 200, await response.text()
    await until(lambda: expirer.armed == 1)

    response = await client.post("/hitl/cancel", json={"request_id": cancelled})
    assert response.status == 200, await response.text()
    await until(lambda: expirer.armed == 0)

    for request_id, status in ((answered, "answered"), (cancelled, "cancelled")):
        view = await get_json(client, f"/v1/requests/{request_id}")
        assert view["status"] == status
        assert view["decided_by"]["kind"] != "policy"


# --- on a fake clock ------------------------------------------------------------


T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TIMEOUT = 60
DEADLINE = T0 + timedelta(seconds=TIMEOUT)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class Runtime:
    """Hub, service and expirer over one store, as the app wires them."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self.store, self.clock = store, clock
        self.hub = Hub(store)
        self.service = Requests(store, self.hub, Sessions(store, clock=clock), clock=clock)
        self.expirer = Expirer(self.service, self.hub)
        self.started = False

    async def start(self) -> None:
        self.started = True
        await self.hub.start()
        await self.expirer.start()

    async def stop(self) -> None:
        await self.expirer.stop()
        await self.hub.stop()

    async def create(self, timeout_seconds: int = TIMEOUT, **fields: Any) -> str:
        await self.service.sessions.register_session("s1", "agent", None, OPERATOR)
        view, _ = await self.service.create_request(
            session_id="s1",
            client_id="agent",
            message="Deploy?",
            request_type="confirmation",
            timeout_seconds=timeout_seconds,
            actor=OPERATOR,
            **fields,
        )
        # Let the hub hand the creation to the expirer first, so a test that
        # arms a timer by hand is not followed by the expirer's own arming.
        head = await self.store.head()
        while self.started and self.hub.position < head:  # noqa: ASYNC110 - a test poll
            await asyncio.sleep(0.001)
        return view.request_id

    async def status(self, request_id: str) -> str:
        return (await self.service.get_request(request_id, OPERATOR)).status

    async def wait_final(self, request_id: str) -> str:
        view = await self.service.wait_for_decision(request_id, OPERATOR, SETTLE)
        assert view.final, view
        return view.status


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def runtime(store: EventStore, clock: Clock) -> AsyncIterator[Runtime]:
    runtime = Runtime(store, clock)
    await runtime.start()
    yield runtime
    await runtime.stop()


async def test_a_human_answer_a_hair_before_the_deadline_wins(
    runtime: Runtime, clock: Clock, store: EventStore
) -> None:
    request_id = await runtime.create()
    await until(lambda: runtime.expirer.armed == 1)

    clock.now = DEADLINE - timedelta(milliseconds=1)
    view = await runtime.service.answer(request_id, option="Approve", channel="api", actor=OPERATOR)
    assert view.status == "answered"
    await until(lambda: runtime.expirer.armed == 0)

    # A timer that fires anyway (one armed before the answer was seen) is a no-op.
    clock.now = DEADLINE
    assert await runtime.service.expire(request_id, "local") == []
    runtime.expirer.arm(request_id, "local", DEADLINE)
    await until(lambda: runtime.expirer.armed == 0)
    await asyncio.sleep(0.05)

    stream = await store.read_stream(f"request-{request_id}")
    assert finals(stream) == ["request.response_received"]
    view = await runtime.service.get_request(request_id, OPERATOR)
    assert (view.status, view.approved, view.responder) == ("answered", True, "operator")


async def test_an_answer_committed_while_the_expiry_is_being_decided_wins(
    runtime: Runtime, clock: Clock, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The expirer read the stream (still pending) and decided to expire; the
    # human's answer, made a millisecond before the deadline, commits first.
    # The expiry's append names the version it read, fails, and on the re-read
    # the decider sees the answer: exactly one decision, the human's.
    request_id = await runtime.create()
    real_append = store.append
    expiry_attempts = 0

    async def answer_lands_first(
        stream: str, expected_version: int | None, events: Sequence[Event], meta: Meta
    ) -> list[RecordedEvent]:
        nonlocal expiry_attempts
        if any(isinstance(e, RequestExpired) for e in events):
            expiry_attempts += 1
            if expiry_attempts == 1:
                await real_append(
                    stream,
                    expected_version,
                    [
                        ResponseReceived(
                            request_id=request_id,
                            responder="operator",
                            option="Reject",
                            approved=False,
                            channel="telegram",
                            responded_at=DEADLINE - timedelta(milliseconds=1),
                        )
                    ],
                    OPERATOR.meta(),
                )
        return await real_append(stream, expected_version, events, meta)

    monkeypatch.setattr(store, "append", answer_lands_first)
    clock.now = DEADLINE
    runtime.expirer.arm(request_id, "local", DEADLINE)

    assert await runtime.wait_final(request_id) == "answered"
    await asyncio.sleep(0.05)  # let the expiry's retry finish
    assert expiry_attempts == 1  # the retry decided there was nothing to expire
    stream = await store.read_stream(f"request-{request_id}")
    assert finals(stream) == ["request.response_received"]
    view = await runtime.service.get_request(request_id, OPERATOR)
    assert (view.status, view.approved, view.channel) == ("answered", False, "telegram")
    assert runtime.expirer.armed == 0


async def test_an_expiry_committed_first_makes_the_late_answer_410(
    runtime: Runtime, clock: Clock, store: EventStore
) -> None:
    request_id = await runtime.create()
    clock.now = DEADLINE
    runtime.expirer.arm(request_id, "local", DEADLINE)
    assert await runtime.wait_final(request_id) == "expired"

    with pytest.raises(RequestClosed) as caught:
        await runtime.service.answer(request_id, option="Approve", channel="api", actor=OPERATOR)
    assert caught.value.code == "request_expired"
    assert finals(await store.read_stream(f"request-{request_id}")) == ["request.expired"]


async def test_racing_answers_and_expiries_make_one_decision_each(
    runtime: Runtime, clock: Clock, store: EventStore
) -> None:
    request_ids = [await runtime.create() for _ in range(5)]
    clock.now = DEADLINE  # the expirer's clock: every request is due
    on_time = Clock()
    on_time.now = DEADLINE - timedelta(milliseconds=1)  # the humans' clock: still on time
    humans = Requests(store, runtime.hub, Sessions(store, clock=on_time), clock=on_time)

    results = await asyncio.gather(
        *(
            humans.answer(request_id, option="Approve", channel="api", actor=OPERATOR)
            for request_id in request_ids
        ),
        *(runtime.service.expire(request_id, "local") for request_id in request_ids),
        return_exceptions=True,
    )

    answers, expiries = results[: len(request_ids)], results[len(request_ids) :]
    for request_id, answer, expiry in zip(request_ids, answers, expiries, strict=True):
        stream = await store.read_stream(f"request-{request_id}")
        assert len(finals(stream)) == 1
        if finals(stream) == ["request.response_received"]:
            assert not isinstance(answer, BaseException), answer
            assert expiry == []
        else:
            # The expiry committed first: the answer re-read and was refused.
            assert isinstance(answer, RequestClosed)
            assert isinstance(expiry, list)
            assert len(expiry) == 1


async def test_a_timer_that_fires_early_is_rearmed_and_expires_on_time(
    runtime: Runtime, clock: Clock, store: EventStore
) -> None:
    # The event loop's clock and the wall clock can disagree by a few
    # milliseconds; the decider then says "not due" and the expirer tries again.
    request_id = await runtime.create()
    clock.now = DEADLINE - timedelta(milliseconds=20)
    runtime.expirer.arm(request_id, "local", DEADLINE)
    await asyncio.sleep(0.1)  # fired at least once, refused as not due, re-armed
    assert await runtime.status(request_id) == "pending"
    # Only a re-armed timer can expire it now: nothing else will fire.

    clock.now = DEADLINE
    assert await runtime.wait_final(request_id) == "expired"
    stream = await store.read_stream(f"request-{request_id}")
    assert finals(stream) == ["request.expired"]
    assert isinstance(stream[-1].event, RequestExpired)
    assert stream[-1].event.expired_at == DEADLINE


async def test_a_failed_expiry_is_retried(
    runtime: Runtime, clock: Clock, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expirer_module, "RETRY_SECONDS", 0.01)
    request_id = await runtime.create()
    real_append = store.append
    failures = 0

    async def down_once(
        stream: str, expected_version: int | None, events: Sequence[Event], meta: Meta
    ) -> list[RecordedEvent]:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise OSError("database unreachable")
        return await real_append(stream, expected_version, events, meta)

    monkeypatch.setattr(store, "append", down_once)
    clock.now = DEADLINE
    runtime.expirer.arm(request_id, "local", DEADLINE)

    assert await runtime.wait_final(request_id) == "expired"
    assert failures == 1
    assert finals(await store.read_stream(f"request-{request_id}")) == ["request.expired"]


async def test_start_rearms_every_open_request_from_the_projection(
    store: EventStore, clock: Clock
) -> None:
    # Written by a process without an expirer (or one that stopped).
    before = Runtime(store, clock)
    pending = await before.create()
    delivered = await before.create(timeout_seconds=TIMEOUT * 2)
    await store.append(
        f"request-{delivered}",
        1,
        [RequestDelivered(request_id=delivered, channel="telegram", delivered_at=T0)],
        OPERATOR.meta(),
    )
    answered = await before.create()
    await before.service.answer(answered, option="Approve", channel="api", actor=OPERATOR)
    never = await before.create(timeout_seconds=0)
    assert await before.status(delivered) == "delivered"

    after = Runtime(store, clock)
    await after.start()
    try:
        assert after.expirer.armed == 2  # pending and delivered; not answered, not "never"

        clock.now = DEADLINE
        after.expirer.arm(pending, "local", DEADLINE)  # as if its timer came due
        assert await after.wait_final(pending) == "expired"
        assert await after.status(delivered) == "delivered"
        assert await after.status(never) == "pending"
        assert after.expirer.armed == 1
    finally:
        await after.stop()
    assert after.expirer.armed == 0


async def test_a_deadline_that_passed_while_stopped_expires_at_start(
    store: EventStore, clock: Clock
) -> None:
    before = Runtime(store, clock)
    overdue = await before.create()
    clock.now = DEADLINE + timedelta(hours=1)

    after = Runtime(store, clock)
    await after.start()
    try:
        assert await after.wait_final(overdue) == "expired"
        stream = await store.read_stream(f"request-{overdue}")
        assert isinstance(stream[-1].event, RequestExpired)
        # The expiry is recorded when it happened, not back-dated to the deadline.
        assert stream[-1].event.expired_at == clock.now
    finally:
        await after.stop()


async def test_stop_cancels_every_timer(runtime: Runtime) -> None:
    for _ in range(3):
        await runtime.create()
    await until(lambda: runtime.expirer.armed == 3)
    await runtime.expirer.stop()
    assert runtime.expirer.armed == 0
