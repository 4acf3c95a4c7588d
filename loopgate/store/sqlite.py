"""The embedded store: SQLite through aiosqlite, in WAL mode, one writer.

One connection writes (``BEGIN IMMEDIATE`` takes SQLite's write lock, so even
another process appending to the same file cannot interleave positions); a
second one reads, which WAL lets run alongside the writer. Committed positions
wake this process's subscribers directly. Appends by *another* process or
store instance on the same file are noticed by a cheap ``PRAGMA data_version``
check every quarter second: SQLite has no NOTIFY, and that pragma reads only
the shared WAL index, never the events table.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiosqlite

from loopgate.errors import ConcurrencyError, StoreUnavailable
from loopgate.events import RecordedEvent
from loopgate.projections import PROJECTIONS, Statement, batch_statements, grouped
from loopgate.store.base import (
    BatchPlan,
    GroupCommitStore,
    PendingAppend,
    plan_batch,
    recorded,
    replay,
)
from loopgate.store.codec import Row, decode_row, row_of
from loopgate.store.migrations import SCHEMA_MIGRATIONS, migrations_for

EXTERNAL_CHECK_SECONDS = 0.25
REBUILD_BATCH = 5000  # events replayed per read by rebuild_projections
_COLUMNS = "position, stream, version, type, data, meta, recorded_at, prev_hash, hash"


def sqlite_value(value: Any) -> Any:
    # Timestamps are stored as fixed-width ISO-8601 UTC text (always with
    # microseconds), so comparing and sorting the text is chronological.
    if isinstance(value, datetime):
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        # isoformat is a third cheaper than strftime, and a rebuild calls this millions of times.
        return value.isoformat(timespec="microseconds").removesuffix("+00:00") + "Z"
    return value


def _row(values: sqlite3.Row | tuple[Any, ...]) -> Row:
    return row_of(values, datetime.fromisoformat)  # timestamps are stored as text


class SqliteStore(GroupCommitStore):
    """The ``EventStore`` on a SQLite file (or ``:memory:``)."""

    backend = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # An in-memory database exists once per connection, so there reads and
        # writes share one connection and the lock keeps reads out of open writes.
        self._shared_lock = asyncio.Lock() if path == ":memory:" else None
        # One transaction at a time on the writer: a rebuild and a group commit
        # must not interleave their statements on the one connection.
        self._write_lock = self._shared_lock or asyncio.Lock()
        self._external_check: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, path: str, *, migrate: bool = True) -> SqliteStore:
        store = cls(path)
        await store._connect()
        if migrate:
            store.applied_migrations = await store.migrate()
        await store._start()
        return store

    async def _connect(self) -> None:
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            await self._writer.execute("PRAGMA journal_mode = WAL")
            await self._writer.execute("PRAGMA synchronous = FULL")
            await self._writer.execute("PRAGMA busy_timeout = 10000")
            if self._shared_lock is None:
                self._reader = await aiosqlite.connect(self.path, isolation_level=None)
                await self._reader.execute("PRAGMA busy_timeout = 10000")
            else:
                self._reader = self._writer
            self._reader.row_factory = sqlite3.Row
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {self.path!r}: {exc}") from exc

    async def _start(self) -> None:
        if await self._has_events_table():
            self._watch.advance(await self.head())
        if self._shared_lock is None:
            self._external_check = asyncio.create_task(self._watch_other_writers())

    async def _has_events_table(self) -> bool:
        rows = await self._fetch("SELECT 1 FROM sqlite_master WHERE type='table' AND name='events'")
        return bool(rows)

    # --- migrations -----------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations; returns the names applied (empty when up to date)."""
        writer = self._conn(self._writer)
        await writer.execute(SCHEMA_MIGRATIONS)
        applied = []
        for migration in migrations_for("sqlite"):
            await writer.execute("BEGIN IMMEDIATE")
            try:
                cursor = await writer.execute(
                    "SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)
                )
                if await cursor.fetchone() is None:
                    for statement in split_sql(migration.sql):
                        await writer.execute(statement)
                    await writer.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at)"
                        " VALUES (?, ?, ?)",
                        (migration.version, migration.name, sqlite_value(datetime.now(UTC))),
                    )
                    applied.append(f"{migration.version:03d}_{migration.name}")
                await writer.execute("COMMIT")
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
        return applied

    # --- appending ------------------------------------------------------------

    async def _write_batch(self, items: list[PendingAppend]) -> BatchPlan:
        writer = self._conn(self._writer)
        async with self._write_lock:
            await writer.execute("BEGIN IMMEDIATE")
            try:
                plan = await self._plan(writer, items)
                await writer.executemany(
                    f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (r.position, r.stream, r.version, r.type, r.data, r.meta,
                         sqlite_value(r.recorded_at), r.prev_hash, r.hash)
                        for r in plan.rows
                    ],
                )  # fmt: skip
                records = [
                    record
                    for item, outcome in plan.outcomes
                    if isinstance(outcome, list)
                    for record in recorded(item, outcome)
                ]
                await self._apply_statements(writer, batch_statements(records))
                await writer.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                await writer.execute("ROLLBACK")
                # A unique key of a projection (two streams claiming one request id or
                # idempotency key); Postgres reports it as a ConcurrencyError too.
                raise ConcurrencyError(items[0].stream, items[0].expected_version, None) from exc
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
        if plan.rows:
            self._watch.advance(plan.rows[-1].position)
        return plan

    async def _plan(self, writer: aiosqlite.Connection, items: list[PendingAppend]) -> BatchPlan:
        cursor = await writer.execute(
            "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
        )
        head = await cursor.fetchone()
        streams = sorted({item.stream for item in items})
        marks = ", ".join("?" for _ in streams)
        cursor = await writer.execute(
            f"SELECT stream, MAX(version) FROM events WHERE stream IN ({marks}) GROUP BY stream",
            streams,
        )
        versions = {stream: version for stream, version in await cursor.fetchall()}
        return plan_batch(
            items,
            head_position=head[0] if head else 0,
            head_hash=head[1] if head else None,
            stream_versions=versions,
        )

    async def _apply_statements(
        self, conn: aiosqlite.Connection, statements: list[Statement]
    ) -> None:
        # Runs of the same statement go as one executemany: one hop to
        # aiosqlite's thread instead of one per event.
        for sql, runs in grouped(statements):
            await conn.executemany(sql, [tuple(sqlite_value(p) for p in params) for params in runs])

    # --- reading --------------------------------------------------------------

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        reader = self._conn(self._reader)
        try:
            async with self._shared_lock or contextlib.nullcontext():
                # One trip to aiosqlite's thread. An execute and a fetch apart let
                # other reads run in between on this connection, which keeps the
                # first statement's snapshot open: a read right after a commit
                # could then miss it.
                return list(await reader.execute_fetchall(sql, params))
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite read failed: {exc}") from exc

    async def read_rows(self, after: int = 0, limit: int = 1000) -> list[Row]:
        """Raw rows, undecoded: what audit verification hashes."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?",
            (after, limit),
        )
        return [_row(r) for r in rows]

    async def read_stream(self, stream: str) -> list[RecordedEvent]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream = ? ORDER BY version", (stream,)
        )
        return [decode_row(_row(r)) for r in rows]

    async def head(self) -> int:
        rows = await self._fetch("SELECT COALESCE(MAX(position), 0) FROM events")
        return int(rows[0][0])

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query (``?`` placeholders) on the query tables; rows as dicts."""
        return [dict(row) for row in await self._fetch(sql, tuple(sqlite_value(p) for p in params))]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Write outside any append (see ``EventStore.execute``); the rows affected."""
        writer = self._conn(self._writer)
        try:
            # On the writer, between group commits: the one connection runs
            # one transaction at a time, and this statement commits on its own.
            async with self._write_lock:
                cursor = await writer.execute(sql, tuple(sqlite_value(p) for p in params))
                return cursor.rowcount
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite write failed: {exc}") from exc

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def _watch_other_writers(self) -> None:
        last_seen = None
        while True:
            await asyncio.sleep(EXTERNAL_CHECK_SECONDS)
            with contextlib.suppress(StoreUnavailable):
                (data_version,) = (await self._fetch("PRAGMA data_version"))[0]
                if data_version != last_seen:
                    last_seen = data_version
                    self._watch.advance(await self.head())

    # --- projections ----------------------------------------------------------

    async def rebuild_projections(self, progress: Callable[[int], None] | None = None) -> int:
        writer = self._conn(self._writer)
        replayed = 0
        async with self._write_lock:
            await writer.execute("BEGIN IMMEDIATE")
            try:
                for projection in PROJECTIONS:
                    await writer.execute(f"DELETE FROM {projection.TABLE}")

                async def read(after: int, limit: int) -> list[Row]:
                    cursor = await writer.execute(
                        f"SELECT {_COLUMNS} FROM events WHERE position > ?"
                        " ORDER BY position LIMIT ?",
                        (after, limit),
                    )
                    return [_row(r) for r in await cursor.fetchall()]

                async for statements, count in replay(read, REBUILD_BATCH):
                    await self._apply_statements(writer, statements)
                    replayed += count
                    if progress is not None:
                        progress(replayed)
                await writer.execute("COMMIT")
            except BaseException:
                await writer.execute("ROLLBACK")
                raise
        return replayed

    # --- lifecycle ------------------------------------------------------------

    def _conn(self, conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise StoreUnavailable("the SQLite store is not open")
        return conn

    async def close(self) -> None:
        await self._committer.close()
        if self._external_check is not None:
            self._external_check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._external_check
        for conn in {id(c): c for c in (self._reader, self._writer) if c is not None}.values():
            await conn.close()
        self._reader = self._writer = None


def split_sql(script: str) -> list[str]:
    """Split a migration into statements (``executescript`` would commit on its own)."""
    statements, current = [], []
    for line in script.splitlines():
        if line.strip().startswith("--"):
            continue
        current.append(line)
        if sqlite3.complete_statement("\n".join(current)):
            statements.append("\n".join(current).strip())
            current = []
    return [s for s in statements if s.strip(" ;\n")]
