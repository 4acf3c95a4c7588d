"""``python -m bench append``: appends/s of the event store against one commit per row.

Loopgate side: N asyncio workers call ``store.append()``, each append a
``RequestCreated`` to its own new stream ``request-<uuid>`` at expected
version 0, through the store that ``loopgate.store.open_store`` returns (group
commit, advisory lock / ``BEGIN IMMEDIATE``, hash chain, projections).

Baseline side, in the same database and the same run: the same row (stream,
version, type, data and meta JSON, recorded_at, prev_hash, hash, with the same
sizes and the same indexes as ``events``) inserted into a plain table, one
autocommitted ``INSERT`` (one transaction, one commit) at a time per
connection, with the same driver:

* Postgres (asyncpg): N workers, each on its own connection from a pool of N;
* SQLite (aiosqlite): N workers sharing one connection in WAL mode with
  ``synchronous = FULL`` like the store's, since SQLite has one writer anyway.

The strictly serial baseline (1 connection, 1 worker) is measured first and is
the baseline of the concurrency-1 row. Every run works in a fresh database:
``loopgate_bench_<random>`` created through the admin URL and dropped with
``WITH (FORCE)`` at the end, or a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import secrets
import signal
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import aiosqlite
import asyncpg

from bench.cli import (
    INTERRUPTED,
    add_database_url,
    add_store_options,
    admin_url,
    check_store_options,
    finish,
    progress,
    run_benchmark,
)
from bench.measure import Op, Sample, Timing, run_closed_loop
from loopgate.events import Meta, Option, RequestCreated
from loopgate.store import open_store
from loopgate.store.base import EventStore
from loopgate.store.codec import encode_event, encode_meta

DEFAULT_LEVELS = (1, 16, 64)
MAX_CONCURRENCY = 1000
SPARE_CONNECTIONS = 16
"""Postgres connections kept free for the store's pool, its listener and the admin."""

BASELINE_TABLE = "bench_baseline"
_BASELINE_COLUMNS = "stream, version, type, data, meta, recorded_at, prev_hash, hash"
_POSTGRES_BASELINE_DDL = f"""
CREATE TABLE {BASELINE_TABLE} (
    position    BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream      TEXT        NOT NULL,
    version     INTEGER     NOT NULL,
    type        TEXT        NOT NULL,
    data        JSONB       NOT NULL,
    meta        JSONB       NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL,
    prev_hash   TEXT        NOT NULL,
    hash        TEXT        NOT NULL,
    UNIQUE (stream, version)
);
CREATE INDEX {BASELINE_TABLE}_type_position ON {BASELINE_TABLE} (type, position);
"""
_SQLITE_BASELINE_DDL = (
    f"""
CREATE TABLE {BASELINE_TABLE} (
    position    INTEGER PRIMARY KEY,
    stream      TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    data        TEXT    NOT NULL,
    meta        TEXT    NOT NULL,
    recorded_at TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    UNIQUE (stream, version)
)""",
    f"CREATE INDEX {BASELINE_TABLE}_type_position ON {BASELINE_TABLE} (type, position)",
)


# --- the workload ------------------------------------------------------------


def new_request() -> tuple[str, RequestCreated, Meta]:
    """A realistic new request: its stream, its ``RequestCreated`` and the meta."""
    request_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    event = RequestCreated(
        request_id=request_id,
        session_id="sess-bench",
        client_id="bench-agent",
        message="Deploy build 4f2c1e to production?",
        request_type="confirmation",
        options=(Option(label="Approve", approves=True), Option(label="Reject", approves=False)),
        timeout_seconds=300,
        created_at=now,
        expires_at=now + timedelta(seconds=300),
    )
    meta = Meta(actor="apikey:bench", tenant="local", correlation_id=uuid.uuid4().hex)
    return f"request-{request_id}", event, meta


def baseline_row() -> tuple[Any, ...]:
    """The same columns as an ``events`` row for a new request (hashes are stand-ins)."""
    stream, event, meta = new_request()
    data = encode_event(event)
    prev_hash = secrets.token_hex(32)
    digest = hashlib.sha256(prev_hash.encode() + data.encode()).hexdigest()
    return (stream, 1, "request.created", data, encode_meta(meta), event.created_at,
            prev_hash, digest)  # fmt: skip


async def append_one(store: EventStore) -> None:
    """One Loopgate append: a new request stream at expected version 0."""
    stream, event, meta = new_request()
    await store.append(stream, 0, [event], meta)


# --- baselines -----------------------------------------------------------------


class Baseline(Protocol):
    """One row per transaction into the plain table, by ``n`` concurrent writers."""

    description: str

    async def prepare(self) -> None:
        """Create the plain table."""
        ...

    def writers(self, n: int) -> AbstractAsyncContextManager[list[Op]]:
        """An async context giving ``n`` ops, each inserting and committing one row."""
        ...


class PostgresBaseline:
    """asyncpg: each of ``n`` workers holds its own pooled connection."""

    description = "asyncpg, one pooled connection per worker, one autocommit INSERT per row"

    def __init__(self, url: str) -> None:
        self.url = url

    async def prepare(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            await conn.execute(_POSTGRES_BASELINE_DDL)
        finally:
            await conn.close()

    @asynccontextmanager
    async def writers(self, n: int) -> AsyncIterator[list[Op]]:
        pool = await asyncpg.create_pool(self.url, min_size=n, max_size=n)
        connections: list[asyncpg.Connection] = []
        try:
            connections = [await pool.acquire() for _ in range(n)]
            yield [partial(self._insert, conn) for conn in connections]
        finally:
            for conn in connections:
                await pool.release(conn)
            await pool.close()

    @staticmethod
    async def _insert(conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"INSERT INTO {BASELINE_TABLE} ({_BASELINE_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            *baseline_row(),
        )


class SqliteBaseline:
    """aiosqlite: ``n`` workers share one connection (SQLite has a single writer)."""

    description = "aiosqlite, one shared WAL connection (synchronous=FULL), autocommit INSERT"

    def __init__(self, path: str) -> None:
        self.path = path

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode = WAL", "synchronous = FULL", "busy_timeout = 10000"):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    async def prepare(self) -> None:
        conn = await self._connect()
        try:
            for statement in _SQLITE_BASELINE_DDL:
                await conn.execute(statement)
        finally:
            await conn.close()

    @asynccontextmanager
    async def writers(self, n: int) -> AsyncIterator[list[Op]]:
        conn = await self._connect()
        try:
            yield [partial(self._insert, conn) for _ in range(n)]
        finally:
            await conn.close()

    @staticmethod
    async def _insert(conn: aiosqlite.Connection) -> None:
        row = list(baseline_row())
        row[5] = row[5].isoformat().replace("+00:00", "Z")  # the store's timestamp text
        await conn.execute(
            f"INSERT INTO {BASELINE_TABLE} ({_BASELINE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )


# --- scratch databases -----------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` instead."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def check_connection_budget(admin: asyncpg.Connection, levels: Sequence[int]) -> None:
    """Fail early, with a clear message, if the baseline would exhaust max_connections."""
    limit = int(await admin.fetchval("SHOW max_connections"))
    if max(levels) + SPARE_CONNECTIONS > limit:
        raise SystemExit(
            f"concurrency {max(levels)} needs {max(levels) + SPARE_CONNECTIONS} Postgres "
            f"connections but max_connections is {limit}"
        )


@asynccontextmanager
async def postgres_scratch(admin_url: str, levels: Sequence[int]) -> AsyncIterator[str]:
    """A new ``loopgate_bench_<random>`` database, dropped (WITH FORCE) on the way out."""
    name = f"loopgate_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(admin_url)
    try:
        await check_connection_budget(admin, levels)
        await admin.execute(f'CREATE DATABASE "{name}"')
        progress(f"created database {name}")
        try:
            yield with_database(admin_url, name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            progress(f"dropped database {name}")
    finally:
        await admin.close()


@asynccontextmanager
async def sqlite_scratch() -> AsyncIterator[str]:
    """A SQLite URL for a file in a temporary directory, removed on the way out."""
    with tempfile.TemporaryDirectory(prefix="loopgate_bench_") as directory:
        path = Path(directory, "loopgate.db")
        progress(f"using {path}")
        yield f"sqlite:///{path}"


def make_baseline(store_kind: str, url: str) -> Baseline:
    """The baseline for a store kind, in the same database as the store."""
    if store_kind == "postgres":
        return PostgresBaseline(url)
    return SqliteBaseline(url.removeprefix("sqlite:///"))


# --- running -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What ``python -m bench append`` was asked to do."""

    store: str
    levels: tuple[int, ...]
    timing: Timing
    admin_url: str


@dataclass(frozen=True)
class Level:
    """Both measurements at one concurrency level."""

    concurrency: int
    loopgate: Sample
    baseline: Sample


@dataclass(frozen=True)
class Report:
    """Everything one run measured."""

    settings: Settings
    baseline_description: str
    serial: Sample
    levels: list[Level]
    log_head: int
    acknowledged: int


def describe(label: str, sample: Sample) -> str:
    """A one-line summary of a sample for the progress log."""
    text = (
        f"{label}: {sample.rate:,.0f}/s, p50 {sample.percentile(0.5) * 1e3:.2f} ms, "
        f"p99 {sample.percentile(0.99) * 1e3:.2f} ms"
    )
    return text + (f", {len(sample.errors)} error(s)" if sample.errors else "")


async def measure_baseline(baseline: Baseline, n: int, timing: Timing) -> Sample:
    """The baseline with ``n`` concurrent writers."""
    async with baseline.writers(n) as ops:
        sample = await run_closed_loop(ops, timing)
    progress(describe(f"baseline  c={n}", sample))
    return sample


async def measure_loopgate(store: EventStore, n: int, timing: Timing) -> Sample:
    """Loopgate's ``append()`` with ``n`` concurrent workers."""
    sample = await run_closed_loop([partial(append_one, store)] * n, timing)
    progress(describe(f"loopgate  c={n}", sample))
    return sample


async def run_levels(url: str, settings: Settings) -> Report:
    """Measure the serial baseline, then both sides at every level, in one database."""
    baseline = make_baseline(settings.store, url)
    store = await open_store(url)
    try:
        await baseline.prepare()
        serial = await measure_baseline(baseline, 1, settings.timing)
        levels = []
        for n in settings.levels:
            loopgate = await measure_loopgate(store, n, settings.timing)
            base = serial if n == 1 else await measure_baseline(baseline, n, settings.timing)
            levels.append(Level(n, loopgate, base))
        head = await store.head()
    finally:
        await store.close()
    acknowledged = sum(level.loopgate.completed for level in levels)
    return Report(settings, baseline.description, serial, levels, head, acknowledged)


def cancel_on_sigterm() -> None:
    """Let SIGTERM unwind the run like Ctrl-C does, so the scratch database is still dropped."""
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


async def run(settings: Settings) -> Report:
    """One benchmark run in a fresh scratch database."""
    cancel_on_sigterm()
    scratch = (
        postgres_scratch(settings.admin_url, settings.levels)
        if settings.store == "postgres"
        else sqlite_scratch()
    )
    async with scratch as url:
        return await run_levels(url, settings)


# --- output ------------------------------------------------------------------------


def _ms(sample: Sample, q: float) -> str:
    return f"{sample.percentile(q) * 1e3:.2f}"


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "-"


def _table_row(level: Level, serial: Sample) -> tuple[str, ...]:
    """One concurrency level's cells, in the order of the table's header."""
    return (
        str(level.concurrency),
        f"{level.loopgate.rate:,.0f}",
        f"{level.baseline.rate:,.0f}",
        _ratio(level.loopgate.rate, level.baseline.rate),
        _ratio(level.loopgate.rate, serial.rate),
        _ms(level.loopgate, 0.5),
        _ms(level.loopgate, 0.99),
        _ms(level.baseline, 0.5),
        _ms(level.baseline, 0.99),
    )


def format_report(report: Report) -> str:
    """The results as a plain-text table."""
    timing = report.settings.timing
    header = (
        "concurrency", "loopgate appends/s", "baseline appends/s", "ratio", "vs serial",
        "loopgate p50 ms", "loopgate p99 ms", "baseline p50 ms", "baseline p99 ms",
    )  # fmt: skip
    rows = [_table_row(level, report.serial) for level in report.levels]
    lines = [
        f"store: {report.settings.store}  ({timing.seconds:g} s per measurement"
        f" after {timing.warmup:g} s warm-up)",
        f"baseline: {report.baseline_description}",
        describe("serial baseline (1 connection, 1 writer)", report.serial),
        "",
        *table_lines(header, rows),
        "",
        "ratio = loopgate / baseline at the same concurrency;"
        " vs serial = loopgate / serial baseline",
    ]
    return "\n".join(lines)


def table_lines(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A plain-text table: right-aligned cells under a header and a rule."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    rule = "-+-".join("-" * w for w in widths)

    def line(cells: Sequence[str]) -> str:
        return " | ".join(cell.rjust(width) for cell, width in zip(cells, widths, strict=True))

    return [line(header), rule, *(line(r) for r in rows)]


def errors_of(report: Report) -> list[BaseException]:
    """Every error any worker hit (a clean run has none)."""
    samples = [report.serial, *(s for lv in report.levels for s in (lv.loopgate, lv.baseline))]
    return [exc for sample in samples for exc in sample.errors]


# --- command line --------------------------------------------------------------------


def concurrency_levels(text: str) -> tuple[int, ...]:
    """Parse ``1,16,64`` into positive, bounded concurrency levels."""
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not levels or not all(1 <= n <= MAX_CONCURRENCY for n in levels):
        raise argparse.ArgumentTypeError(f"each level must be between 1 and {MAX_CONCURRENCY}")
    return levels


def add_subcommand(subcommands: Any) -> None:
    """Register ``append`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "append",
        help="appends/s of the event store vs one commit per row",
        description="Appends/s of Loopgate's event store against one commit per row.",
        epilog=(
            "Loopgate: N asyncio workers each append a RequestCreated to a new stream"
            " (expected_version 0). Baseline: the same row, one autocommitted INSERT per"
            " transaction into a plain table with the same driver (postgres: one pooled"
            " connection per worker). Each measurement takes warmup + seconds: the serial"
            " baseline, then Loopgate and the baseline at each level (about 30 s by default)."
        ),
    )
    add_store_options(
        parser,
        seconds=3.0,
        seconds_help="measuring time per level and side",
        warmup_help="warm-up before each measurement, not counted",
    )
    parser.add_argument(
        "--concurrency", type=concurrency_levels, default=DEFAULT_LEVELS, metavar="N[,N...]",
        help="concurrent workers per level (default: 1,16,64)",
    )  # fmt: skip
    add_database_url(
        parser, postgres_only=True, note="; sqlite always uses a file in a temporary directory"
    )
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the table goes to stdout. Exit status 1 if any append failed."""
    check_store_options(args)
    settings = Settings(
        store=args.store,
        levels=args.concurrency,
        timing=Timing(warmup=args.warmup, seconds=args.seconds),
        admin_url=admin_url(args),
    )
    report = run_benchmark("append", run(settings), database_error="database error: ")
    if report is None:
        return INTERRUPTED
    progress(f"log head {report.log_head}, appends acknowledged {report.acknowledged}")
    status = finish(format_report(report), [repr(exc) for exc in errors_of(report)])
    if report.log_head != report.acknowledged:
        progress("warning: the log head does not match the acknowledged appends")
    return status
