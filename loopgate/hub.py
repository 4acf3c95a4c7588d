"""The hub: one subscription to the log per process, fanned out to waiters.

Long-polls, SSE streams and blocking MCP calls do not query the database in a
loop; they register interest in a stream (``request-<id>``) and sleep until
the hub sees a committed event for it. The expirer registers a
listener that sees every committed event. SSE
streams take a :class:`Subscription`: every committed event, in order, through
a bounded queue.

The hub follows ``store.subscribe``, so it is woken by this process's own
appends and, on Postgres, by every other process's through NOTIFY.

Each waiter that holds a client's connection open (a long-poll, an MCP wait,
an SSE stream) first takes a parking slot (:meth:`Hub.park`): at most
``max_waiters`` in the process and ``max_waiters_per_workspace`` for one
tenant, so a flood of waits is a 429, not a process out of file descriptors.
The caps are per process: each process has its own descriptors to protect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator

import structlog

from loopgate.errors import TooManyRequests
from loopgate.events import RecordedEvent
from loopgate.store.base import EventStore

log = structlog.get_logger(__name__)

Listener = Callable[[RecordedEvent], None]
RETRY_SECONDS = 1.0
SUBSCRIPTION_QUEUE_SIZE = 1000
"""Events a subscription holds for a slow consumer before it falls back to reading the log."""
CATCH_UP_PAGE = 500


class Subscription:
    """Every committed event after ``position``, in order, each exactly once.

    The hub pushes events into a bounded queue. A consumer too slow to keep
    up does not make it grow: on overflow the queue is emptied and the
    subscription reads the log itself (``store.read_all``) from the last
    event it delivered until it reaches the hub, then rejoins the live feed.
    Nothing is lost and memory stays bounded.
    """

    def __init__(self, hub: Hub, maxsize: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[RecordedEvent | None] = asyncio.Queue(maxsize)
        self._catching_up = False
        self._backlog: list[RecordedEvent] = []
        self._closed = False
        self.position = hub.position
        """The last position delivered (at first, where the hub was on subscribing)."""

    @property
    def catching_up(self) -> bool:
        """True while the subscription reads the log instead of its queue."""
        return self._catching_up

    def _push(self, record: RecordedEvent) -> None:
        if self._catching_up or self._closed:
            return
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._fall_behind()

    def _fall_behind(self) -> None:
        self._catching_up = True
        while not self._queue.empty():
            self._queue.get_nowait()

    def close(self) -> None:
        """End the subscription: ``next`` raises ``StopAsyncIteration`` from now on."""
        if self._closed:
            return
        self._closed = True
        self._fall_behind()
        self._catching_up = False
        self._queue.put_nowait(None)  # wakes a consumer waiting on the queue

    async def next(self, wait_seconds: float | None = None) -> RecordedEvent | None:
        """The next event; ``None`` if none came within ``wait_seconds``.

        Raises ``StopAsyncIteration`` once the subscription is closed.
        """
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._catching_up:
                record = await self._catch_up()
                if record is None:
                    continue  # caught up: back to the queue
            else:
                try:
                    async with asyncio.timeout(wait_seconds):
                        record = await self._queue.get()
                except TimeoutError:
                    return None
                if record is None:
                    continue  # closed, or emptied while catching up
                if record.position <= self.position:
                    continue  # already delivered from the log
            self.position = record.position
            return record

    async def _catch_up(self) -> RecordedEvent | None:
        if not self._backlog:
            if self.position >= self._hub.position:
                # Everything after the hub's position will be pushed to the
                # queue from here on; no await separates the check and the switch.
                self._catching_up = False
                return None
            self._backlog = await self._hub.store.read_all(self.position, CATCH_UP_PAGE)
            self._backlog.reverse()
            if not self._backlog:
                self._catching_up = False
                return None
        return self._backlog.pop()

    def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        return self

    async def __anext__(self) -> RecordedEvent:
        record = await self.next()
        assert record is not None  # no timeout: next() waits
        return record


class Hub:
    def __init__(
        self, store: EventStore, *, max_waiters: int = 0, max_waiters_per_workspace: int = 0
    ) -> None:
        self._store = store
        self.max_waiters, self.max_waiters_per_workspace = max_waiters, max_waiters_per_workspace
        self._parked: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listeners: list[Listener] = []
        self._subscriptions: set[Subscription] = set()
        self._routes: dict[tuple[str, str], set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self.position = 0
        """The last position dispatched."""

    async def start(self) -> None:
        """Follow the log from its current head (what came before is in the projections)."""
        self.position = await self._store.head()
        self._task = asyncio.create_task(self._run(), name="loopgate-hub")

    @property
    def store(self) -> EventStore:
        return self._store

    async def stop(self) -> None:
        self.close_subscriptions()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` (synchronously, keep it quick) for every committed event."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; a no-op if it is not registered."""
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    @contextlib.contextmanager
    def park(self, tenant: str) -> Iterator[None]:
        """Hold one of the waiter slots while a client waits; 429 ``too_many_waiters`` if none.

        0 for a cap means no cap.
        """
        mine = self._parked.get(tenant, 0)
        if self.max_waiters and self.parked >= self.max_waiters:
            raise _too_many("this server", self.max_waiters)
        if self.max_waiters_per_workspace and mine >= self.max_waiters_per_workspace:
            raise _too_many("this workspace", self.max_waiters_per_workspace)
        self._parked[tenant] = mine + 1
        try:
            yield
        finally:
            left = self._parked[tenant] - 1
            if left:
                self._parked[tenant] = left
            else:
                del self._parked[tenant]

    @property
    def parked(self) -> int:
        """How many clients hold a waiter slot (long-polls, MCP waits, SSE streams)."""
        return sum(self._parked.values())

    @contextlib.contextmanager
    def watch(self, stream: str) -> Iterator[asyncio.Event]:
        """An event set when something is appended to ``stream``; unregistered on exit.

        Register *before* reading the state you wait on, then read, then wait:
        an append between the read and the wait still sets the event.
        """
        event = asyncio.Event()
        self._waiters.setdefault(stream, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(stream)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[stream]

    @contextlib.contextmanager
    def subscribe(
        self,
        maxsize: int | None = None,
        *,
        stream: str | None = None,
        tenant: str | None = None,
    ) -> Iterator[Subscription]:
        """Every event committed after the hub's current position; released on exit.

        ``stream`` or ``tenant`` narrows what is pushed live, so a thousand
        streams of single requests are not all woken by every answer. (Catch-up
        reads from the log are not narrowed: consumers filter what they show.)
        ``maxsize`` bounds the queue (default ``SUBSCRIPTION_QUEUE_SIZE``).
        ``subscription.position`` says where it starts, so a consumer that
        replays history from the log first can hand over without a gap.
        """
        subscription = Subscription(self, maxsize or SUBSCRIPTION_QUEUE_SIZE)
        route = ("stream", stream) if stream else ("tenant", tenant) if tenant else ("all", "")
        routed = self._routes.setdefault(route, set())
        self._subscriptions.add(subscription)
        routed.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            routed.discard(subscription)
            if not routed:
                self._routes.pop(route, None)
            subscription.close()

    def close_subscriptions(self) -> None:
        """End every subscription (on shutdown, so open streams finish at once)."""
        for subscription in list(self._subscriptions):
            subscription.close()

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open (for tests and metrics)."""
        return len(self._subscriptions)

    @property
    def waiting(self) -> int:
        """How many waiters are registered (for tests and metrics)."""
        return sum(len(w) for w in self._waiters.values())

    async def _run(self) -> None:
        while True:
            try:
                async for record in self._store.subscribe(self.position):
                    self._dispatch(record)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A corrupt event or a lost database must not kill the process's
                # wake-ups for good; the log says what is wrong, and we retry.
                log.error("hub stopped following the log", error=str(exc), position=self.position)
                await asyncio.sleep(RETRY_SECONDS)

    def _dispatch(self, record: RecordedEvent) -> None:
        self.position = record.position
        for event in self._waiters.get(record.stream, ()):
            event.set()
        for route in (("all", ""), ("stream", record.stream), ("tenant", record.meta.tenant)):
            for subscription in self._routes.get(route, ()):
                subscription._push(record)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                log.exception("hub listener failed", position=record.position)


def _too_many(where: str, cap: int) -> TooManyRequests:
    return TooManyRequests(
        f"{where} already holds {cap} long-polls and event streams open; "
        "try again shortly, or wait with shorter polls",
        retry_after=1,
        code="too_many_waiters",
    )
