"""The event store: one protocol, two backends (``sqlite.py``, ``postgres.py``).

Every state change is appended to one log. A stream (``request-<id>``) has a
version; an append names the version it expects and fails with
:class:`~loopgate.errors.ConcurrencyError` if the stream moved on. That is how
"first answer wins": two answers racing for one request produce exactly one
``ResponseReceived``.

The log has a global ``position`` that is gap-free and commit-ordered: a
position is taken under the writer's exclusive lock and the lock is held until
commit, so once a reader sees position N, every position below N is committed
and visible too. ``subscribe`` relies on that to tail the log without ever
skipping an event that a slower transaction fills in later.

Appends are grouped (group commit): while one transaction is being written,
new appends queue up and all of them go into the next transaction, so one
fsync serves many requests and throughput grows with concurrency. Each append
still succeeds or fails on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from loopgate.errors import ConcurrencyError, LoopgateError
from loopgate.events import Event, Meta, RecordedEvent, event_type
from loopgate.metrics import Metrics
from loopgate.projections import Statement, batch_statements
from loopgate.store.codec import (
    GENESIS_HASH,
    Row,
    decode_row,
    encode_event,
    encode_meta,
    row_hash,
)

MAX_BATCH = 512
"""The most appends one group-commit transaction takes; bounds its size and latency."""


class EventStore(Protocol):
    """What every backend offers. Positions start at 1; stream versions at 1."""

    backend: str
    """``"sqlite"`` or ``"postgres"``."""

    metrics: Metrics
    """Where appends are measured; the app hands the store its own."""

    @property
    def known_head(self) -> int:
        """The last committed position this process has heard of, without a query."""
        ...

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations; returns the names applied."""
        ...

    async def append(
        self,
        stream: str,
        expected_version: int | None,
        events: Sequence[Event],
        meta: Meta,
    ) -> list[RecordedEvent]:
        """Append ``events`` to ``stream`` if it is at ``expected_version``.

        ``expected_version`` is 0 for a new stream and None for "whatever it is".
        Projections are updated in the same transaction, so a read after the
        append returns sees it. Raises ``ConcurrencyError`` on a stale version.
        """
        ...

    async def read_stream(self, stream: str) -> list[RecordedEvent]:
        """All events of one stream, in version order ([] for an unknown stream)."""
        ...

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        """Up to ``limit`` events with ``position > after``, in position order."""
        ...

    def subscribe(self, after: int = 0) -> AsyncIterator[RecordedEvent]:
        """Every event after ``after``: first the log, then live, once each, in order."""
        ...

    async def read_rows(self, after: int = 0, limit: int = 1000) -> list[Row]:
        """Like ``read_all`` but undecoded: the stored columns, for hash verification."""
        ...

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Query the projection tables (``?`` placeholders); rows as dicts."""
        ...

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Write outside any append (``?`` placeholders); returns the rows affected.

        Only for what records use rather than an action: derived columns such
        as ``api_keys.last_used_at`` (lost by ``rebuild_projections``) and a
        reactor's own bookkeeping tables (checkpoints, the Telegram update
        inbox), which are not projections. Every other change is an event.
        """
        ...

    async def head(self) -> int:
        """The last committed position (0 for an empty log)."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the database answers."""
        ...

    async def rebuild_projections(self, progress: Callable[[int], None] | None = None) -> int:
        """Empty the query tables and replay the whole log into them; returns events replayed.

        ``progress``, if given, is called after each batch with the number of
        events replayed so far (inside the transaction: it must not block).
        """
        ...

    async def close(self) -> None: ...


@dataclass
class PendingAppend:
    """One caller's append, waiting for the next group-commit transaction."""

    stream: str
    expected_version: int | None
    events: Sequence[Event]
    meta: Meta
    future: asyncio.Future[list[RecordedEvent]] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


@dataclass
class BatchPlan:
    """The rows one transaction will insert, and each append's outcome."""

    rows: list[Row] = field(default_factory=list)
    outcomes: list[tuple[PendingAppend, list[Row] | LoopgateError]] = field(default_factory=list)


def plan_batch(
    items: Sequence[PendingAppend],
    *,
    head_position: int,
    head_hash: str | None,
    stream_versions: dict[str, int],
    now: datetime | None = None,
) -> BatchPlan:
    """Check versions and assign positions, versions and hashes for a batch.

    Runs under the writer's exclusive lock, with the log's head and the current
    version of every stream the batch touches. An append whose expected version
    is stale gets a ``ConcurrencyError`` and takes no position, so positions
    stay gap-free.
    """
    recorded_at = now or datetime.now(UTC)
    position, prev_hash = head_position, head_hash or GENESIS_HASH
    versions = dict(stream_versions)
    plan = BatchPlan()
    for item in items:
        current = versions.get(item.stream, 0)
        if item.expected_version is not None and item.expected_version != current:
            plan.outcomes.append(
                (item, ConcurrencyError(item.stream, item.expected_version, current))
            )
            continue
        meta = encode_meta(item.meta)
        rows: list[Row] = []
        for event in item.events:
            position, current = position + 1, current + 1
            unhashed = Row(
                position=position,
                stream=item.stream,
                version=current,
                type=event_type(event),
                data=encode_event(event),
                meta=meta,
                recorded_at=recorded_at,
                prev_hash=prev_hash,
                hash="",
            )
            prev_hash = row_hash(unhashed)
            rows.append(msgspec.structs.replace(unhashed, hash=prev_hash))
        versions[item.stream] = current
        plan.rows.extend(rows)
        plan.outcomes.append((item, rows))
    return plan


def recorded(item: PendingAppend, rows: list[Row]) -> list[RecordedEvent]:
    """The caller's view of its rows (events as passed in, no re-decoding)."""
    return [
        RecordedEvent(
            position=row.position,
            stream=row.stream,
            version=row.version,
            event=event,
            meta=item.meta,
            recorded_at=row.recorded_at,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )
        for row, event in zip(rows, item.events, strict=True)
    ]


class HeadWatch:
    """The last committed position this process knows of, and a way to wait for more."""

    def __init__(self, position: int = 0) -> None:
        self.position = position
        self._advanced = asyncio.Event()

    def advance(self, position: int) -> None:
        if position > self.position:
            self.position = position
            # Wake everyone waiting now; later waiters wait on a fresh event.
            self._advanced.set()
            self._advanced = asyncio.Event()

    async def wait_beyond(self, position: int) -> None:
        while self.position <= position:
            await self._advanced.wait()


class GroupCommitter:
    """Queues appends and hands them to ``write_batch`` a transaction at a time.

    ``write_batch`` writes one transaction and returns the plan it committed;
    the futures are resolved here, only after the commit. If a whole
    transaction fails for a reason other than a version conflict (say, one
    append breaks a projection), its appends are retried one by one so only
    the faulty one fails.
    """

    def __init__(self, write_batch: Callable[[list[PendingAppend]], Awaitable[BatchPlan]]) -> None:
        self._write_batch = write_batch
        self._queue: list[PendingAppend] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, item: PendingAppend) -> list[RecordedEvent]:
        if self._closed:
            raise RuntimeError("the event store is closed")
        self._queue.append(item)
        self._wakeup.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="loopgate-group-commit")
        return await item.future

    async def _run(self) -> None:
        while not (self._closed and not self._queue):
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = [i for i in self._queue[:MAX_BATCH] if not i.future.done()]
                del self._queue[:MAX_BATCH]
                if batch:
                    await self._commit(batch)

    async def _commit(self, batch: list[PendingAppend]) -> None:
        try:
            plans = [await self._write_batch(batch)]
        except Exception as exc:
            if len(batch) == 1:
                _settle_failure(batch[0], exc)
                return
            plans = []
            for item in batch:
                try:
                    plans.append(await self._write_batch([item]))
                except Exception as item_exc:
                    _settle_failure(item, item_exc)
        for plan in plans:
            for item, outcome in plan.outcomes:
                if item.future.done():
                    continue
                if isinstance(outcome, LoopgateError):
                    item.future.set_exception(outcome)
                else:
                    item.future.set_result(recorded(item, outcome))

    async def close(self) -> None:
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task


def _settle_failure(item: PendingAppend, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)


async def follow(
    read_all: Callable[[int, int], Awaitable[list[RecordedEvent]]],
    watch: HeadWatch,
    after: int,
    page: int = 500,
) -> AsyncIterator[RecordedEvent]:
    """Catch up from the log after ``after``, then follow live as the head advances."""
    position = after
    while True:
        records = await read_all(position, page)
        for record in records:
            yield record
            position = record.position
        if len(records) < page:
            await watch.wait_beyond(position)


class GroupCommitStore:
    """What both backends share: grouped appends, decoding, following the log.

    A backend provides ``_write_batch`` (one transaction under its exclusive
    write lock) and ``read_rows``, and advances ``_watch`` whenever it learns
    of a committed position.
    """

    backend: str

    def __init__(self) -> None:
        self._watch = HeadWatch()
        # What open() applied, for `loopgate migrate` to report.
        self.applied_migrations: list[str] = []
        self._committer = GroupCommitter(self._measured_batch)
        self.metrics = Metrics()

    @property
    def known_head(self) -> int:
        return self._watch.position

    async def _measured_batch(self, items: list[PendingAppend]) -> BatchPlan:
        plan = await self._write_batch(items)
        self.metrics.committed(self.backend, len(plan.rows))
        return plan

    async def _write_batch(self, items: list[PendingAppend]) -> BatchPlan:
        raise NotImplementedError

    async def read_rows(self, after: int = 0, limit: int = 1000) -> list[Row]:
        raise NotImplementedError

    async def append(
        self, stream: str, expected_version: int | None, events: Sequence[Event], meta: Meta
    ) -> list[RecordedEvent]:
        if not events:
            return []
        started = time.perf_counter()
        try:
            return await self._committer.submit(
                PendingAppend(stream, expected_version, events, meta)
            )
        finally:
            self.metrics.appended(self.backend, time.perf_counter() - started)

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[RecordedEvent]:
        return [decode_row(row) for row in await self.read_rows(after, limit)]

    def subscribe(self, after: int = 0) -> AsyncIterator[RecordedEvent]:
        return follow(self.read_all, self._watch, after)


async def replay(
    read_rows: Callable[[int, int], Awaitable[list[Row]]], batch: int
) -> AsyncIterator[tuple[list[Statement], int]]:
    """The log's projection SQL a batch at a time, with how many events each batch holds.

    The next batch is read, decoded and turned into SQL while the caller
    executes this one, so the database's work and ours overlap.
    """

    async def prepare(after: int) -> tuple[list[Statement], int, int]:
        rows = await read_rows(after, batch)
        records = [decode_row(row) for row in rows]
        return batch_statements(records), len(records), rows[-1].position if rows else after

    pending = asyncio.create_task(prepare(0))
    try:
        while True:
            statements, count, last = await pending
            if not count:
                return
            pending = asyncio.create_task(prepare(last))
            yield statements, count
    finally:
        pending.cancel()
