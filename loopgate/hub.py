"""The hub: one subscription to the log per process, fanned out to waiters.

Long-polls, SSE streams and blocking MCP calls do not query the database in a
loop; they register interest in a stream (``request-<id>``) and sleep until
the hub sees a committed event for it. Reactors (the expirer, later the
Telegram sender) register listeners that see every committed event.

The hub follows ``store.subscribe``, so it is woken by this process's own
appends and, on Postgres, by every other process's through NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import structlog

from loopgate.store.base import EventStore
from loopgate.store.codec import RecordedEvent

log = structlog.get_logger(__name__)

Listener = Callable[[RecordedEvent], None]
RETRY_SECONDS = 1.0


class Hub:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listeners: list[Listener] = []
        self._task: asyncio.Task[None] | None = None
        self.position = 0
        """The last position dispatched."""

    async def start(self) -> None:
        """Follow the log from its current head (what came before is in the projections)."""
        self.position = await self._store.head()
        self._task = asyncio.create_task(self._run(), name="loopgate-hub")

    async def stop(self) -> None:
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
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:
                log.exception("hub listener failed", position=record.position)
