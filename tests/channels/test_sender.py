"""The one channel sender, over a recording adapter: what every channel gets for free.

Telegram (tests/telegram), Slack (tests/slack) and email (tests/email) test
their adapters through it; here the model itself: one message per target,
recorded with whom and where; retries that honour the service's wait;
refusals given up on at once; every message kept current; nudges once per
target; nothing sent twice when the log is followed again after a restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from waiting import eventually

from loopgate.channels.model import Delivery, Nudge, RetryLater, Sent, Target, Undeliverable
from loopgate.channels.sender import ChannelSender
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.domain.teams import ANY_PRINCIPAL
from loopgate.events import DeliveryFailed, Event, RequestDelivered
from loopgate.hub import Hub
from loopgate.reactors.checkpoint import Checkpoint
from loopgate.reactors.lease import AlwaysHeld
from loopgate.store.base import EventStore
from loopgate.views import RequestView

AGENT = Actor(id="apikey:k1", tenant="t", role="owner")  # an agent key: it never answers
ALICE = Actor(
    id="alice",
    tenant="t",
    answers_as="alice",
    role="approver",
    principals=frozenset({ANY_PRINCIPAL}),
)


@dataclass
class RecordingAdapter:
    """A channel that records what the sender asks of it; ``failures`` come first, per address."""

    targets_given: list[Target]
    name: str = "slack"
    sent: list[str] = field(default_factory=list)
    attempts: dict[str, list[float]] = field(default_factory=dict)
    failures: dict[str, list[Exception]] = field(default_factory=dict)
    shown: list[tuple[str, bool, bool]] = field(default_factory=list)
    nudged: list[tuple[str, Nudge]] = field(default_factory=list)
    hold_sends: asyncio.Event | None = None

    async def targets(self, view: RequestView, approvers: Sequence[str]) -> list[Target]:
        return self.targets_given

    async def send(self, target: Target, view: RequestView) -> Sent:
        self.attempts.setdefault(target.address, []).append(asyncio.get_running_loop().time())
        waiting = self.failures.get(target.address)
        if waiting:
            raise waiting.pop(0)
        if self.hold_sends is not None:
            await self.hold_sends.wait()
        self.sent.append(target.address)
        delivery = Delivery(
            target.address,
            f"m{len(self.sent)}",
            conversation=f"C-{target.address}",
            routed_by=target.routed_by,
        )
        return Sent(delivery, view.message, tuple(o.label for o in view.options))

    async def show_state(self, delivery: Delivery, view: RequestView) -> None:
        self.shown.append((delivery.message_id, view.final, view.approved))

    async def nudge(self, delivery: Delivery, view: RequestView, kind: Nudge) -> None:
        self.nudged.append((delivery.address, kind))

    def classify(self, error: BaseException) -> RetryLater | Undeliverable | None:
        return RetryLater(str(error)) if isinstance(error, ConnectionError) else None


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def requests(store: EventStore, clock: Clock) -> AsyncIterator[Requests]:
    hub = Hub(store)
    await hub.start()
    service = Requests(store, hub, Sessions(store), clock=clock)
    await service.sessions.register_session("s1", "agent", None, AGENT)
    yield service
    await hub.stop()


async def started(adapter: RecordingAdapter, requests: Requests, **options: float) -> ChannelSender:
    sender = ChannelSender(
        adapter,  # type: ignore[arg-type]  # name is a plain str here
        requests,
        AlwaysHeld("test"),
        attempts=int(options.get("attempts", 3)),
        retry_seconds=options.get("retry_seconds", 0.01),
    )
    await sender.start()
    return sender


async def ask(requests: Requests) -> str:
    view, _ = await requests.create_request(
        session_id="s1",
        client_id="agent",
        message="Deploy v2.1?",
        request_type="confirmation",
        actor=AGENT,
        approvers=("user:alice", "slack:#ops"),
        remind_every_seconds=60,
    )
    return view.request_id


async def history(store: EventStore, request_id: str) -> list[Event]:
    return [record.event for record in await store.read_stream(f"request-{request_id}")]


async def deliveries(sender: ChannelSender, request_id: str, count: int) -> list[Delivery]:
    """The request's recorded messages, once there are ``count``."""
    async with asyncio.timeout(10):
        while True:
            found = await sender.deliveries_of(request_id)
            if len(found) >= count:
                return found
            await asyncio.sleep(0.01)


async def history_with(store: EventStore, request_id: str, *kinds: type[Event]) -> list[Event]:
    """The request's events once they hold one of each of ``kinds`` (the sender appends late)."""
    async with asyncio.timeout(10):
        while True:
            events = await history(store, request_id)
            if all(any(isinstance(e, kind) for e in events) for kind in kinds):
                return events
            await asyncio.sleep(0.01)


async def test_each_target_gets_one_message_recorded_with_whom_and_where(
    store: EventStore, requests: Requests
) -> None:
    adapter = RecordingAdapter([Target("U1"), Target("#ops", routed_by="slack:#ops")])
    sender = await started(adapter, requests)
    try:
        rid = await ask(requests)
        await eventually(lambda: len(adapter.sent) == 2)
        await deliveries(sender, rid, 2)
        delivered = [e for e in await history(store, rid) if isinstance(e, RequestDelivered)]
    finally:
        await sender.stop()
    by_address = {d.address: d for d in delivered}
    assert set(by_address) == {"U1", "#ops"}
    ops = by_address["#ops"]
    assert (ops.channel, ops.conversation, ops.routed_by) == ("slack", "C-#ops", "slack:#ops")
    assert ops.chat_id is None and ops.shown_text == "Deploy v2.1?"
    assert by_address["U1"].routed_by is None
    assert sorted(d.message_id for d in await deliveries(sender, rid, 2)) == ["m1", "m2"]


async def test_a_retry_waits_as_long_as_the_service_asked_then_sends_once(
    store: EventStore, requests: Requests
) -> None:
    adapter = RecordingAdapter([Target("U1")])
    adapter.failures["U1"] = [RetryLater("429 rate limited", after=0.3), ConnectionError("reset")]
    sender = await started(adapter, requests)
    try:
        rid = await ask(requests)
        events = await history_with(store, rid, RequestDelivered)
    finally:
        await sender.stop()
    first, second, third = adapter.attempts["U1"]
    assert second - first >= 0.3  # the service's wait, not the 0.01 s of retry_seconds
    assert third > second
    assert adapter.sent == ["U1"]
    assert sum(isinstance(e, RequestDelivered) for e in events) == 1
    assert not any(isinstance(e, DeliveryFailed) for e in events)


async def test_a_refusal_is_given_up_on_at_once_and_the_others_still_get_theirs(
    store: EventStore, requests: Requests
) -> None:
    adapter = RecordingAdapter([Target("U-gone"), Target("U1")])
    adapter.failures["U-gone"] = [Undeliverable("user_not_found")]
    sender = await started(adapter, requests)
    try:
        rid = await ask(requests)
        events = await history_with(store, rid, RequestDelivered, DeliveryFailed)
    finally:
        await sender.stop()
    [failed] = [e for e in events if isinstance(e, DeliveryFailed)]
    assert (failed.address, failed.attempts, failed.error) == ("U-gone", 1, "user_not_found")
    assert len(adapter.attempts["U-gone"]) == 1
    assert adapter.sent == ["U1"]


async def test_every_message_shows_the_outcome_and_nudges_go_once_per_target(
    store: EventStore, requests: Requests, clock: Clock
) -> None:
    adapter = RecordingAdapter([Target("U1"), Target("#ops", routed_by="slack:#ops")])
    sender = await started(adapter, requests)
    try:
        rid = await ask(requests)
        await eventually(lambda: len(adapter.sent) == 2)
        await deliveries(sender, rid, 2)
        clock.now += timedelta(seconds=61)
        await requests.remind(rid, "t", 1)
        await eventually(lambda: len(adapter.nudged) == 2)
        await requests.answer(rid, option="Approve", channel="console", actor=ALICE)
        await eventually(lambda: len(adapter.shown) == 2)
    finally:
        await sender.stop()
    assert sorted(adapter.nudged) == [("#ops", "reminder"), ("U1", "reminder")]
    assert sorted(adapter.shown) == [("m1", True, True), ("m2", True, True)]


async def test_a_request_decided_while_its_message_was_on_the_way_shows_the_outcome(
    store: EventStore, requests: Requests
) -> None:
    adapter = RecordingAdapter([Target("U1")], hold_sends=asyncio.Event())
    sender = await started(adapter, requests)
    try:
        rid = await ask(requests)
        await eventually(lambda: "U1" in adapter.attempts)
        await requests.answer(rid, option="Reject", channel="console", actor=ALICE)
        adapter.hold_sends.set()  # type: ignore[union-attr]
        await eventually(lambda: adapter.shown == [("m1", True, False)])
    finally:
        await sender.stop()
    assert not any(isinstance(e, RequestDelivered) for e in await history(store, rid))


async def test_following_the_log_again_after_a_restart_sends_nothing_twice(
    store: EventStore, requests: Requests
) -> None:
    adapter = RecordingAdapter([Target("U1")])
    sender = await started(adapter, requests)
    try:
        rid = await ask(requests)
        await eventually(lambda: adapter.sent == ["U1"])
        await deliveries(sender, rid, 1)
    finally:
        await sender.stop()
    # As after a crash right after the send: the checkpoint is behind the work done.
    await Checkpoint(store, sender.name).save(0, datetime(2026, 1, 1, tzinfo=UTC))
    again = await started(adapter, requests)
    try:
        await asyncio.sleep(0.3)  # time to redo the creation, were it to send anything
        await eventually(lambda: again.lag == 0)
    finally:
        await again.stop()
    assert adapter.sent == ["U1"]
