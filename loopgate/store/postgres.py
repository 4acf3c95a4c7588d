"""The Postgres store: asyncpg, advisory-locked group commit, LISTEN/NOTIFY.

Why a lock: positions must commit in order. If two transactions took positions
5 and 6 and the one holding 6 committed first, a reader tailing the log would
see 6, move on, and never read 5. So every append transaction first takes one
transaction-level advisory lock and only then reads the head and assigns the
next positions; the lock is released at commit, after the rows are visible.
That serialises writers, which is why appends are grouped: one transaction
(one lock, one fsync) carries every append that queued while the previous one
was committing.

Each append transaction ends with ``pg_notify('loopgate_events', <last position>)``.
One dedicated connection per process LISTENs; when it drops, it reconnects and
re-reads the head, so a lost notification delays a subscriber but never loses
an event: subscribers always read the log itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import structlog

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
from loopgate.store.scratch import ScratchTables

log = structlog.get_logger(__name__)

CHANNEL = "loopgate_events"
APPEND_LOCK = 0x6C6F6F7067617465  # "loopgate": serialises appends across processes
MIGRATE_LOCK = APPEND_LOCK + 1
LISTEN_KEEPALIVE_SECONDS = 15.0
LISTENER_NAME = "loopgate-listen"  # application_name, so operators can tell it apart
REBUILD_BATCH = 5000  # events replayed per read by rebuild_projections
COPY_BATCH = 10_000  # rows per COPY when a rebuild loads the rebuilt tables
_COLUMNS = "position, stream, version, type, data, meta, recorded_at, prev_hash, hash"
_CONNECTION_ERRORS = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)


class _UncommittedConnectionError(Exception):
    """The writer's connection broke before COMMIT: the batch was not written."""


@functools.cache
def numbered(sql: str) -> str:
    """Projection SQL uses ``?``; asyncpg wants ``$1, $2, ...``."""
    counter = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(counter)}", sql)


# The head and each stream's version in one round trip. One index probe per
# stream: "stream = ANY($1) GROUP BY stream" gets a cached generic plan that
# scans the whole table once it has run a few times on a young, un-ANALYZEd log.
READ_HEAD_AND_VERSIONS = (
    "SELECT head.position, head.hash, versions.versions"
    " FROM (SELECT jsonb_object_agg(s.stream, e.version)::text AS versions"
    "       FROM unnest($1::text[]) AS s(stream)"
    "       CROSS JOIN LATERAL (SELECT version FROM events WHERE events.stream = s.stream"
    "                           ORDER BY version DESC LIMIT 1) AS e) AS versions"
    " LEFT JOIN LATERAL (SELECT position, hash FROM events"
    "                    ORDER BY position DESC LIMIT 1) AS head ON TRUE"
)

# The whole batch in one statement (one array per column), plus its NOTIFY.
INSERT_ROWS_AND_NOTIFY = (
    f"WITH inserted AS (INSERT INTO events ({_COLUMNS})"
    " SELECT p, s, v, t, d::jsonb, m::jsonb, r, ph, h"
    " FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[],"
    " $7::timestamptz[], $8::text[], $9::text[]) AS x(p, s, v, t, d, m, r, ph, h))"
    f" SELECT pg_notify('{CHANNEL}', $10)"
)


def _columns_of(rows: list[Row]) -> list[list[Any]]:
    return [[getattr(row, name) for row in rows] for name in Row.__struct_fields__]


async def _reset_released(conn: asyncpg.Connection) -> None:
    """What a connection needs when it goes back to the pool: nothing, usually.

    The default reset (unlock all, close cursors, unlisten, reset settings)
    costs a round trip on every release. Pooled connections here keep no
    session state: LISTEN has its own connection and the migration lock is
    released explicitly. Only a transaction left open must be undone.
    """
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


def _row(record: asyncpg.Record) -> Row:
    # By position (the order of _COLUMNS): half the cost of going through a dict.
    return row_of(record)


class PostgresStore(GroupCommitStore):
    """The ``EventStore`` on a Postgres database."""

    backend = "postgres"

    def __init__(self, dsn: str, pool: asyncpg.Pool) -> None:
        super().__init__()
        self.dsn = dsn
        self._pool = pool
        self._listener: asyncio.Task[None] | None = None
        # The group committer's own connection, kept between batches: batches
        # run one at a time, and skipping the pool's acquire/reset saves a
        # round trip per transaction.
        self._writer: asyncpg.Connection | None = None

    @classmethod
    async def open(
        cls, dsn: str, *, migrate: bool = True, min_size: int = 2, max_size: int = 10
    ) -> PostgresStore:
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, reset=_reset_released
            )
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"cannot connect to Postgres: {exc}") from exc
        store = cls(dsn, pool)
        if migrate:
            store.applied_migrations = await store.migrate()
        listening = asyncio.Event()
        store._listener = asyncio.create_task(store._listen(listening), name="loopgate-listen")
        await listening.wait()
        return store

    # --- migrations -----------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply pending migrations under an advisory lock (several servers may start at once)."""
        applied = []
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATE_LOCK)
            try:
                await conn.execute(SCHEMA_MIGRATIONS)
                done = {
                    r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")
                }
                for migration in migrations_for("postgres"):
                    if migration.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, applied_at)"
                            " VALUES ($1, $2, now()::text)",
                            migration.version,
                            migration.name,
                        )
                    applied.append(f"{migration.version:03d}_{migration.name}")
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATE_LOCK)
        return applied

    # --- appending ------------------------------------------------------------

    async def _write_batch(self, items: list[PendingAppend]) -> BatchPlan:
        try:
            return await self._write_batch_once(items)
        except _UncommittedConnectionError:
            # The connection broke before COMMIT was sent (a server restart
            # drops the kept writer): nothing was written, so once more on a
            # fresh connection. A break during COMMIT is not retried: it may
            # have committed.
            try:
                return await self._write_batch_once(items)
            except _UncommittedConnectionError as again:
                raise StoreUnavailable(f"Postgres append failed: {again.__cause__}") from again

    async def _write_batch_once(self, items: list[PendingAppend]) -> BatchPlan:
        if self._writer is None:
            self._writer = await self._connection()
        conn = self._writer
        committing = False
        try:
            transaction = conn.transaction()
            await transaction.start()
            try:
                plan = await _insert_batch(conn, items)
            except BaseException:
                await transaction.rollback()
                raise
            committing = True
            await transaction.commit()
        except asyncpg.UniqueViolationError as exc:
            # A unique key of a query table (one request id claimed by two
            # streams, a racing idempotency key), or a writer bypassing the lock.
            raise ConcurrencyError(items[0].stream, items[0].expected_version, None) from exc
        except _CONNECTION_ERRORS as exc:
            self._writer = None
            with contextlib.suppress(*_CONNECTION_ERRORS):
                await self._pool.release(conn)  # a broken connection is replaced by the pool
            if not committing:
                raise _UncommittedConnectionError() from exc
            raise StoreUnavailable(f"Postgres append failed: {exc}") from exc
        if plan.rows:
            self._watch.advance(plan.rows[-1].position)
        return plan

    async def _connection(self) -> asyncpg.Connection:
        try:
            return await self._pool.acquire()
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"cannot connect to Postgres: {exc}") from exc

    # --- reading --------------------------------------------------------------

    async def _fetch(self, sql: str, *params: Any) -> list[asyncpg.Record]:
        try:
            async with self._pool.acquire() as conn:
                return list(await conn.fetch(sql, *params))
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"Postgres read failed: {exc}") from exc

    async def read_rows(self, after: int = 0, limit: int = 1000) -> list[Row]:
        """Raw rows, undecoded: what audit verification hashes."""
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE position > $1 ORDER BY position LIMIT $2",
            after,
            limit,
        )
        return [_row(r) for r in rows]

    async def read_stream(self, stream: str) -> list[RecordedEvent]:
        rows = await self._fetch(
            f"SELECT {_COLUMNS} FROM events WHERE stream = $1 ORDER BY version", stream
        )
        return [decode_row(_row(r)) for r in rows]

    async def head(self) -> int:
        rows = await self._fetch("SELECT COALESCE(MAX(position), 0) AS head FROM events")
        return int(rows[0]["head"])

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a read query (``?`` placeholders) on the query tables; rows as dicts."""
        return [dict(r.items()) for r in await self._fetch(numbered(sql), *params)]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Write outside any append (see ``EventStore.execute``); the rows affected."""
        # No append lock: this writes no event and takes no position.
        try:
            async with self._pool.acquire() as conn:
                status = await conn.execute(numbered(sql), *params)
                # The command tag ends with the row count: "INSERT 0 1", "UPDATE 3".
                return int(status.rsplit(" ", 1)[-1]) if status[-1:].isdigit() else 0
        except _CONNECTION_ERRORS as exc:
            raise StoreUnavailable(f"Postgres write failed: {exc}") from exc

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def _listen(self, listening: asyncio.Event) -> None:
        """Follow NOTIFYs on a dedicated connection; reconnect and catch up after a drop."""
        delay = 0.1
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": LISTENER_NAME}
                )
                dropped = asyncio.Event()
                conn.add_termination_listener(lambda _c, dropped=dropped: dropped.set())
                await conn.add_listener(
                    CHANNEL, lambda _c, _pid, _ch, payload: self._watch.advance(int(payload))
                )
                # Anything committed while we were not listening is caught up here.
                self._watch.advance(await self.head())
                listening.set()
                delay = 0.1
                while not dropped.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(dropped.wait(), LISTEN_KEEPALIVE_SECONDS)
                    if not dropped.is_set():
                        # A silently dead TCP connection only shows when used.
                        await asyncio.wait_for(conn.execute("SELECT 1"), 5)
            except asyncio.CancelledError:
                if conn is not None:
                    await conn.close(timeout=2)
                raise
            except Exception as exc:
                log.warning("postgres listener lost, reconnecting", error=str(exc), retry_in=delay)
                listening.set()  # open() must not hang while the database is down
            if conn is not None and not conn.is_closed():
                conn.terminate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # --- projections ----------------------------------------------------------

    async def rebuild_projections(self, progress: Callable[[int], None] | None = None) -> int:
        """Replay the log into scratch tables, then swap their rows in (``store/scratch.py``)."""
        replayed = 0
        # The scratch work runs on this thread: in a worker thread it and the
        # decoding here fight over the GIL, and both run at half speed.
        scratch = ScratchTables()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                # Holding the append lock keeps new events out while the tables are rebuilt.
                await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
                # Read on other connections, which see every event: none can be
                # appended while this transaction holds the append lock.
                async for statements, count in replay(self.read_rows, REBUILD_BATCH):
                    scratch.apply(statements)
                    replayed += count
                    if progress is not None:
                        progress(replayed)
                # Readers see the old rows until this transaction commits.
                for projection in PROJECTIONS:
                    await conn.execute(f"DELETE FROM {projection.TABLE}")
                    await _copy_from_scratch(conn, scratch, projection.TABLE)
        finally:
            scratch.close()
        return replayed

    # --- lifecycle ------------------------------------------------------------

    async def close(self) -> None:
        await self._committer.close()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._writer is not None:
            await self._pool.release(self._writer)
            self._writer = None
        await self._pool.close()


# How a value as SQLite keeps it becomes the Postgres column's type (others pass as they are).
_FROM_SQLITE: dict[str, Callable[[Any], Any]] = {
    "timestamp with time zone": datetime.fromisoformat,  # fixed-width ISO-8601 text
    "boolean": bool,  # 0 or 1
}


async def _insert_batch(conn: asyncpg.Connection, items: list[PendingAppend]) -> BatchPlan:
    """The batch's rows and projections, under the append lock, in ``conn``'s transaction."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", APPEND_LOCK)
    # Read only now, under the lock: the head and versions are final.
    state = await conn.fetchrow(READ_HEAD_AND_VERSIONS, sorted({item.stream for item in items}))
    plan = plan_batch(
        items,
        head_position=state["position"] or 0,
        head_hash=state["hash"],
        stream_versions=msgspec.json.decode(state["versions"] or "{}"),
    )
    if plan.rows:
        # NOTIFY is delivered at commit, so it can go with the insert.
        await conn.execute(
            INSERT_ROWS_AND_NOTIFY, *_columns_of(plan.rows), str(plan.rows[-1].position)
        )
        records = [
            record
            for item, outcome in plan.outcomes
            if isinstance(outcome, list)
            for record in recorded(item, outcome)
        ]
        await _execute_grouped(conn, batch_statements(records))
    return plan


async def _copy_from_scratch(conn: asyncpg.Connection, scratch: ScratchTables, table: str) -> None:
    """COPY one scratch table's rows into the Postgres table of the same name."""
    columns = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
        table,
    )
    names = [column["column_name"] for column in columns]
    converted = [
        (i, _FROM_SQLITE[column["data_type"]])
        for i, column in enumerate(columns)
        if column["data_type"] in _FROM_SQLITE
    ]

    async def records() -> AsyncIterator[list[Any]]:
        # A generator, so the server loads one chunk while the next is converted.
        for chunk in scratch.rows(table, names, COPY_BATCH):
            for row in chunk:
                values = list(row)
                for i, convert in converted:
                    if values[i] is not None:
                        values[i] = convert(values[i])
                yield values
            await asyncio.sleep(0)

    await conn.copy_records_to_table(table, records=records(), columns=names)


async def _execute_grouped(conn: asyncpg.Connection, statements: list[Statement]) -> None:
    """Run statements in order, sending runs of the same SQL as one ``executemany``."""
    for sql, runs in grouped(statements):
        if len(runs) == 1:
            await conn.execute(numbered(sql), *runs[0])
        else:
            await conn.executemany(numbered(sql), runs)
