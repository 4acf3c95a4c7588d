"""The skeleton shared by reactors that act on events concurrently: the follower.

A :class:`LogFollower` holds a lease (``reactors/lease.py``); while it holds
it, it follows the log from its checkpoint (``reactors/checkpoint.py``) and
hands each event to :meth:`LogFollower.work_for`, which may return a
coroutine to run in a task of its own, so one slow receiver holds up nobody.
The checkpoint is saved behind the work still in flight: after a crash, a
stop or a lease hand-over, that work is redone, and each reactor makes redoing
it harmless (by checking the request's stream first). When the store cannot
be read (Postgres restarting), the follower waits and follows on from the last
event it read, so a restart of the database never stops a reactor for good.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import structlog

from loopgate.errors import StoreUnavailable
from loopgate.events import RecordedEvent
from loopgate.reactors.checkpoint import Checkpoint, Progress
from loopgate.reactors.lease import Lease
from loopgate.store.base import EventStore

log = structlog.get_logger(__name__)

SAVE_EVERY_SECONDS = 0.5
RETRY_SECONDS = 1.0  # how long to wait before reading a log that could not be read


class LogFollower:
    """Follows the log under a lease; subclasses say what work each event asks for."""

    name = "follower"

    def __init__(self, store: EventStore, clock: Callable[[], datetime], lease: Lease) -> None:
        self._store, self._clock = store, clock
        self._lease = lease
        self._checkpoint = Checkpoint(store, self.name)
        self._follower: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress: Progress | None = None

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        """The work ``record`` asks for, or None; it runs in its own task."""
        raise NotImplementedError

    @property
    def held(self) -> bool:
        return self._lease.held

    @property
    def lag(self) -> int | None:
        """Events between the log's head and the checkpoint; None unless following here."""
        progress = self._progress
        if progress is None:
            return None
        return max(0, self._store.known_head - progress.safe)

    async def start(self) -> None:
        """Take part in the lease; returns once it was tried (uncontested: following by then)."""
        await self._lease.start(self._follow_from_checkpoint, self._stand_down)

    async def stop(self) -> None:
        await self._lease.stop()
        progress = self._progress
        await self._halt()
        if progress is None:
            return
        try:
            # Work cancelled just now stays in flight, so the next start redoes it.
            await self._checkpoint.save(progress.safe, self._clock())
        except Exception as exc:
            # E.g. the store was closed first: the next start resumes from the
            # last periodic save and redoes a little more, which is harmless.
            log.warning(f"{self.name} checkpoint not saved at stop", error=str(exc))

    def _stand_down(self) -> None:
        """The lease was lost: stop at once, without saving (another process owns it now)."""
        self._progress = None
        for task in (self._follower, *self._tasks):
            if task is not None:
                task.cancel()

    async def _halt(self) -> None:
        tasks = [t for t in (self._follower, *self._tasks) if t is not None]
        self._stand_down()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._follower = None

    async def _follow_from_checkpoint(self) -> None:
        after = await self._checkpoint.load()
        if after is None:
            # First run on this store: events from before this reactor was set
            # up are not acted on now, possibly days late.
            after = await self._store.head()
            await self._checkpoint.save(after, self._clock())
        self._progress = Progress(after)
        self._follower = asyncio.create_task(self._follow(self._progress), name=self.name)
        log.info(f"{self.name} following the log", after=after)

    async def _follow(self, progress: Progress) -> None:
        saver = asyncio.create_task(self._save_periodically(progress))
        try:
            while True:
                try:
                    # From the last event read: what is in flight is not dispatched twice.
                    async for record in self._store.subscribe(progress.last_read):
                        work = self.work_for(record)
                        if work is not None:
                            self._spawn(progress, record, work)
                        progress.read(record.position)
                except StoreUnavailable as exc:
                    log.warning(
                        f"{self.name} cannot read the log, retrying",
                        error=str(exc),
                        retry_in=RETRY_SECONDS,
                    )
                    await asyncio.sleep(RETRY_SECONDS)
        finally:
            saver.cancel()

    async def _save_periodically(self, progress: Progress) -> None:
        saved = progress.safe
        while True:
            await asyncio.sleep(SAVE_EVERY_SECONDS)
            if progress.safe != saved:
                saved = progress.safe
                try:
                    await self._checkpoint.save(saved, self._clock())
                except Exception as exc:
                    log.warning(f"{self.name} checkpoint not saved", error=str(exc))

    def _spawn(
        self, progress: Progress, record: RecordedEvent, work: Coroutine[Any, Any, None]
    ) -> None:
        progress.begin(record.position)

        async def run() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise  # left in flight: redone after the restart
            except Exception:
                log.exception(f"{self.name} failed", position=record.position)
            progress.done(record.position)

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
