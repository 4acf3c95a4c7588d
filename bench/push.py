"""``python -m bench push``: push latency of long-polls and SSE, stream memory, NOTIFY floor.

Everything runs on one fresh Postgres scratch database (``bench append``'s),
against ``python -m loopgate serve`` subprocesses on loopback, in this order:

1. **Stream memory:** a fresh server; ``--streams`` idle ``GET /v1/events``
   SSE streams are opened (ramped, each counted once its response headers
   arrive), then after a short settle the server's ``VmRSS`` and ``VmHWM`` are
   read from ``/proc/<pid>/status``. The server is stopped afterwards so its
   high-water mark is not shared with the other phases.
2. **One process:** server A. For each transport, ``--waiters`` new requests,
   one waiter each, then the requests are answered one at a time on A
   (``POST /v1/requests/{id}/response``), the next answer only once the
   previous waiter received its answer. Push latency = time the waiter
   received the answer - time the answer's POST returned (``perf_counter``
   here; a waiter that received first counts as 0, "waiter first").
   Transports: long-poll (``GET /hitl/poll?request_id=..&wait=60``, received
   = response body read) and SSE (``GET /v1/requests/{id}/events``, received =
   the ``request.response_received`` message read up to its blank line).
3. **Two processes:** server B is started on the same database; waiters on A,
   answers POSTed to B, so the wake-up travels through Postgres NOTIFY.
4. **NOTIFY floor:** two asyncpg connections to the scratch database; one
   LISTENs, the other runs ``SELECT pg_notify(..)`` one at a time. Round trip
   = the listener's callback ran - the statement was sent.

Targets: one-process p99 under 10 ms; two-process p99 at most 3 ms above the
NOTIFY round trip's p99; the streams under 500 MB of server RSS (VmHWM).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec

from bench.append import (
    cancel_on_sigterm,
    postgres_scratch,
    table_lines,
)
from bench.cli import (
    INTERRUPTED,
    BenchError,
    add_database_url,
    admin_url,
    bounded_int,
    finish,
    progress,
    run_benchmark,
)
from bench.hitl import (
    FD_HEADROOM,
    HTTP_TIMEOUT_SECONDS,
    MAX_WAKE_ERRORS,
    SESSION,
    SETTLE_SECONDS,
    WAKE_TIMEOUT_SECONDS,
    PollResult,
    Server,
    Waiters,
    WaitKind,
    Wake,
    _ms,
    _verdict,
    cancel_all,
    child_env,
    client_session,
    create_for_wake,
    long_poll,
    loopgate_argv,
    post,
    quantile,
    raise_fd_limit,
    server_process,
    wait_and_answer,
    wake_summary,
)

DEFAULT_WAITERS = 1000
DEFAULT_STREAMS = 10_000
MAX_WAITERS = 5000
MAX_STREAMS = 50_000
DEFAULT_ROUND_TRIPS = 1000
CREATE_CONCURRENCY = 64

SINGLE_P99_TARGET_MS = 10.0
CROSS_OVER_FLOOR_TARGET_MS = 3.0
RSS_TARGET_MB = 500.0

RESPONSE_EVENT = "request.response_received"
"""The SSE ``event:`` tag of an answer."""
STREAM_RAMP = 250
"""SSE streams opened per step, each step waiting until their headers arrived."""
STREAM_OPEN_TIMEOUT_SECONDS = 60.0
"""How long opening all the idle streams may take."""
NOTIFY_CHANNEL = "loopgate_bench_push"
NOTIFY_WARMUP = 50
SSE_HEADERS = {"Accept": "text/event-stream"}


# --- SSE client ---------------------------------------------------------------------------


@dataclass
class Opened:
    """How many streams got their response headers, and how many failed before that."""

    count: int = 0
    failed: int = 0
    first_error: str | None = None


async def read_until(response: aiohttp.ClientResponse, tag: str) -> bytes | None:
    """Read SSE messages until one with ``event: tag``; its ``data`` (None at end of stream)."""
    event, data = "", []
    async for raw in response.content:
        line = raw.rstrip(b"\r\n")
        if not line:
            if event == tag:
                return b"\n".join(data)
            event, data = "", []
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode()
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
    return None


async def sse_waiter(
    http: aiohttp.ClientSession, url: str, opened: Opened, tag: str | None
) -> PollResult:
    """Open one SSE stream; wait for a ``tag`` message (None: idle until cancelled or closed)."""
    try:
        async with http.get(url, headers=SSE_HEADERS) as response:
            if response.status != 200:
                body = await response.read()
                opened.failed += 1
                opened.first_error = opened.first_error or f"HTTP {response.status}: {body[:200]!r}"
                return PollResult(time.perf_counter(), response.status, body)
            opened.count += 1
            if tag is None:
                await response.content.wait_eof()
                return PollResult(time.perf_counter(), response.status, b"", "stream closed")
            data = await read_until(response, tag)
            at = time.perf_counter()
            if data is None:
                return PollResult(at, response.status, b"", f"stream ended before {tag}")
            return PollResult(at, response.status, data)
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        opened.failed += 1
        opened.first_error = opened.first_error or repr(exc)
        return PollResult(time.perf_counter(), error=repr(exc))


async def open_streams(
    urls: Sequence[tuple[str, str]],
    http: aiohttp.ClientSession,
    tag: str | None,
    ramp: int,
) -> tuple[dict[str, asyncio.Task[PollResult]], Opened]:
    """One SSE stream per (key, url), ``ramp`` at a time, each step until its headers arrived."""
    loop = asyncio.get_running_loop()
    opened = Opened()
    tasks: dict[str, asyncio.Task[PollResult]] = {}
    deadline = loop.time() + STREAM_OPEN_TIMEOUT_SECONDS
    try:
        for start in range(0, len(urls), ramp):
            for key, url in urls[start : start + ramp]:
                tasks[key] = asyncio.create_task(sse_waiter(http, url, opened, tag))
            while opened.count + opened.failed < len(tasks):
                if loop.time() > deadline:
                    raise BenchError(
                        f"only {opened.count} of {len(urls)} SSE streams opened"
                        f" within {STREAM_OPEN_TIMEOUT_SECONDS:g} s"
                    )
                await asyncio.sleep(0.01)
            if opened.failed and opened.count == 0:
                raise BenchError(f"SSE streams fail to open: {opened.first_error}")
    except BaseException:
        await cancel_all(tasks)
        raise
    return tasks, opened


async def sse_available(base_url: str) -> str | None:
    """None if ``GET /v1/events`` answers as an SSE stream, else why not."""
    async with client_session(1, total_timeout=5) as http:
        try:
            async with http.get(f"{base_url}/v1/events", headers=SSE_HEADERS) as response:
                kind = response.headers.get("Content-Type", "")
                if response.status == 200 and kind.startswith("text/event-stream"):
                    return None
                return f"GET /v1/events: HTTP {response.status} ({kind or 'no content type'})"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"GET /v1/events: {exc!r}"


# --- push latency -------------------------------------------------------------------------


@dataclass
class Push:
    """One push-latency measurement: a transport, and where waiters and answers went."""

    mode: str
    transport: str
    wake: Wake
    skipped: str | None = None


def sse_problem(result: PollResult) -> str | None:
    """Why an SSE waiter did not get a well-formed answer message, or None."""
    if result.error is not None:
        return result.error
    if result.status != 200:
        return f"HTTP {result.status}: {result.body[:300]!r}"
    try:
        msgspec.json.decode(result.body)
    except msgspec.DecodeError:
        return f"{RESPONSE_EVENT} data is not JSON: {result.body[:300]!r}"
    return None


def sse(base_url: str, ids: Sequence[str]) -> WaitKind:
    """Waiters that read ``GET /v1/requests/{id}/events`` on ``base_url`` until the answer."""

    async def start(http: aiohttp.ClientSession, _sent: list[int], waiters: Waiters) -> None:
        urls = [(i, f"{base_url}/v1/requests/{i}/events") for i in ids]
        opened_tasks, _ = await open_streams(urls, http, RESPONSE_EVENT, 100)
        waiters.update(opened_tasks)

    return WaitKind(start, sse_problem, "waiter", "waiter(s)")


async def measure_push(
    mode: str, transport: str, wait_on: Server, answer_on: Server, count: int
) -> Push:
    """New requests with one waiter each on ``wait_on``, answered one by one on ``answer_on``.

    The next answer is sent only once the previous waiter received its answer.
    """
    wake, ids = await create_for_wake(wait_on.base_url, count, CREATE_CONCURRENCY)
    progress(f"{mode}, {transport}: created {len(ids)} requests ({wake.created_rate:,.0f}/s)")
    kind = (
        long_poll(wait_on.base_url, ids, "waiter", "waiter(s)")
        if transport == "long-poll"
        else sse(wait_on.base_url, ids)
    )
    await wait_and_answer(
        ids,
        kind,
        answer_on.base_url,
        wake,
        lambda n: (
            f"{mode}, {transport}: {n} waiters on {wait_on.name};"
            f" answering one at a time on {answer_on.name}"
        ),
    )
    progress(
        f"{mode}, {transport}: {wake_summary(wake)}"
        + (f", {len(wake.errors)} error(s)" if wake.errors else "")
    )
    return Push(mode, transport, wake)


# --- stream memory ------------------------------------------------------------------------


def proc_status_kb(pid: int) -> dict[str, int]:
    """The ``kB`` fields of ``/proc/<pid>/status`` (VmRSS, VmHWM, ...); empty off Linux."""
    fields: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0])
    return fields


@dataclass
class Memory:
    """The server's memory before and with the idle streams open."""

    streams: int
    opened: int = 0
    failed: int = 0
    rss_before_kb: int | None = None
    rss_kb: int | None = None
    hwm_kb: int | None = None
    open_seconds: float = 0.0
    skipped: str | None = None
    errors: list[str] = field(default_factory=list)


async def measure_memory(server: Server, streams: int) -> Memory:
    """Open ``streams`` idle ``GET /v1/events`` streams, then read the server's RSS."""
    memory = Memory(streams)
    pid = server.process.pid
    await asyncio.sleep(SETTLE_SECONDS)
    memory.rss_before_kb = proc_status_kb(pid).get("VmRSS")
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=streams, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=HTTP_TIMEOUT_SECONDS),
    )
    async with http:
        started = time.perf_counter()
        urls = [(str(n), f"{server.base_url}/v1/events") for n in range(streams)]
        tasks, opened = await open_streams(urls, http, None, STREAM_RAMP)
        try:
            memory.open_seconds = time.perf_counter() - started
            progress(
                f"{opened.count} idle SSE streams open in {memory.open_seconds:.1f} s;"
                f" settling {SETTLE_SECONDS:g} s"
            )
            await asyncio.sleep(SETTLE_SECONDS)
            status = proc_status_kb(pid)
            memory.rss_kb, memory.hwm_kb = status.get("VmRSS"), status.get("VmHWM")
            closed = sum(task.done() for task in tasks.values())
            memory.opened, memory.failed = opened.count, opened.failed
            if opened.failed:
                memory.errors.append(
                    f"{opened.failed} stream(s) failed to open, first: {opened.first_error}"
                )
            if closed > opened.failed:
                memory.errors.append(f"{closed - opened.failed} stream(s) closed while idle")
        finally:
            await cancel_all(tasks)
    progress(
        f"server RSS {_mb(memory.rss_before_kb)} MB idle, {_mb(memory.rss_kb)} MB"
        f" (VmHWM {_mb(memory.hwm_kb)} MB) with {memory.opened} streams"
    )
    return memory


# --- NOTIFY floor -------------------------------------------------------------------------


@dataclass
class Floor:
    """Postgres NOTIFY -> LISTEN round trips, one at a time."""

    count: int
    round_trips: list[float] = field(default_factory=list)
    """Statement sent -> listener callback."""
    after_return: list[float] = field(default_factory=list)
    """Statement returned -> listener callback (negatives kept)."""
    errors: list[str] = field(default_factory=list)


async def measure_floor(url: str, count: int) -> Floor:
    """``SELECT pg_notify`` on one connection, LISTEN on another; one notification at a time."""
    floor = Floor(count)
    loop = asyncio.get_running_loop()
    pending: dict[str, asyncio.Future[float]] = {}

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        future = pending.pop(payload, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    listener = await asyncpg.connect(url)
    sender = await asyncpg.connect(url)
    try:
        await listener.add_listener(NOTIFY_CHANNEL, on_notify)
        for n in range(NOTIFY_WARMUP + count):
            payload = str(n)
            future = loop.create_future()
            pending[payload] = future
            sent_at = time.perf_counter()
            await sender.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, payload)
            returned_at = time.perf_counter()
            try:
                received_at = await asyncio.wait_for(future, WAKE_TIMEOUT_SECONDS)
            except TimeoutError:
                floor.errors.append(f"notification {n} not received in {WAKE_TIMEOUT_SECONDS} s")
                pending.pop(payload, None)
                if len(floor.errors) >= MAX_WAKE_ERRORS:
                    break
                continue
            if n >= NOTIFY_WARMUP:
                floor.round_trips.append(received_at - sent_at)
                floor.after_return.append(received_at - returned_at)
    finally:
        await sender.close()
        await listener.close()
    progress(
        f"NOTIFY floor: {len(floor.round_trips)} round trips,"
        f" p50 {_ms(quantile(floor.round_trips, 0.5))} ms,"
        f" p99 {_ms(quantile(floor.round_trips, 0.99))} ms"
    )
    return floor


# --- running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What ``python -m bench push`` was asked to do."""

    waiters: int
    streams: int
    round_trips: int
    admin_url: str


@dataclass
class Report:
    settings: Settings
    fd_limit: int
    memory: Memory
    pushes: list[Push]
    floor: Floor
    sse_missing: str | None = None


async def register(server: Server) -> None:
    async with client_session(1) as http:
        await post(http, f"{server.base_url}/hitl/register", msgspec.json.encode(SESSION))


async def run_servers(url: str, workdir: Path, settings: Settings, fd_limit: int) -> Report:
    env = child_env()
    argv = loopgate_argv(url)
    memory = Memory(settings.streams)
    pushes: list[Push] = []
    async with server_process("loopgate-streams", argv, workdir, env) as server:
        sse_missing = await sse_available(server.base_url)
        if sse_missing is None:
            memory = await measure_memory(server, settings.streams)
        else:
            progress(f"SSE not available, skipping the SSE parts: {sse_missing}")
            memory.skipped = sse_missing
    transports = ("long-poll", "SSE")
    async with server_process("loopgate-A", argv, workdir, env) as server_a:
        await register(server_a)
        for transport in transports:
            pushes.append(
                await _push_or_skip(
                    "one process", transport, server_a, server_a, settings, sse_missing
                )
            )
        async with server_process("loopgate-B", argv, workdir, env) as server_b:
            for transport in transports:
                pushes.append(
                    await _push_or_skip(
                        "two processes", transport, server_a, server_b, settings, sse_missing
                    )
                )
    floor = await measure_floor(url, settings.round_trips)
    return Report(settings, fd_limit, memory, pushes, floor, sse_missing)


async def _push_or_skip(
    mode: str,
    transport: str,
    wait_on: Server,
    answer_on: Server,
    settings: Settings,
    sse_missing: str | None,
) -> Push:
    if transport == "SSE" and sse_missing is not None:
        return Push(mode, transport, Wake(settings.waiters), skipped=sse_missing)
    return await measure_push(mode, transport, wait_on, answer_on, settings.waiters)


async def run(settings: Settings, fd_limit: int) -> Report:
    """One benchmark run in a fresh scratch database and a temporary working directory."""
    cancel_on_sigterm()
    with tempfile.TemporaryDirectory(prefix="loopgate_bench_push_") as directory:
        async with postgres_scratch(settings.admin_url, (CREATE_CONCURRENCY,)) as url:
            return await run_servers(url, Path(directory), settings, fd_limit)


# --- output -------------------------------------------------------------------------------


def _mb(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def format_report(report: Report) -> str:
    settings, floor, memory = report.settings, report.floor, report.memory
    floor_p99_ms = quantile(floor.round_trips, 0.99) * 1e3
    push_header = ("mode", "transport", "waiters", "woken", "p50 ms", "p99 ms", "max ms",
                   "waiter first", "answer p50 ms", "sent->received p99 ms", "errors", "target",
                   "verdict")  # fmt: skip
    push_rows = []
    for push in report.pushes:
        wake = push.wake
        single = push.mode == "one process"
        limit = SINGLE_P99_TARGET_MS if single else floor_p99_ms + CROSS_OVER_FLOOR_TARGET_MS
        target = (
            f"p99 < {SINGLE_P99_TARGET_MS:g}"
            if single
            else f"p99 <= floor + {CROSS_OVER_FLOOR_TARGET_MS:g} = {limit:.2f}"
        )
        if push.skipped is not None:
            push_rows.append((push.mode, push.transport, str(wake.waiters), "-", "-", "-", "-",
                              "-", "-", "-", "-", target, "NOT RUN"))  # fmt: skip
            continue
        p99_ms = wake.percentile(0.99) * 1e3
        round_trip = [a + b for a, b in zip(wake.latencies, wake.answer_latencies, strict=True)]
        met = wake.woken == wake.waiters and not wake.errors and p99_ms <= limit
        push_rows.append(
            (
                push.mode,
                push.transport,
                str(wake.waiters),
                str(wake.woken),
                _ms(wake.percentile(0.5)),
                _ms(wake.percentile(0.99)),
                _ms(wake.percentile(1.0)),
                str(wake.poll_first),
                _ms(quantile(wake.answer_latencies, 0.5)),
                _ms(quantile(round_trip, 0.99)),
                str(len(wake.errors)),
                target,
                _verdict(met),
            )
        )
    floor_header = ("round trips", "p50 ms", "p99 ms", "max ms", "after-return p50 ms",
                    "after-return p99 ms", "errors")  # fmt: skip
    after = [max(0.0, value) for value in floor.after_return]
    floor_row = (
        str(len(floor.round_trips)),
        _ms(quantile(floor.round_trips, 0.5)),
        _ms(quantile(floor.round_trips, 0.99)),
        _ms(quantile(floor.round_trips, 1.0)),
        _ms(quantile(after, 0.5)),
        _ms(quantile(after, 0.99)),
        str(len(floor.errors)),
    )
    memory_header = ("streams", "opened", "open s", "RSS idle MB", "VmRSS MB", "VmHWM MB",
                     "KB/stream", "target", "verdict")  # fmt: skip
    if memory.skipped is not None:
        memory_row = (str(memory.streams), "-", "-", "-", "-", "-", "-",
                      f"VmHWM < {RSS_TARGET_MB:g} MB", "NOT RUN")  # fmt: skip
    else:
        per_stream = (
            f"{(memory.rss_kb - memory.rss_before_kb) / memory.opened:.1f}"
            if memory.rss_kb is not None and memory.rss_before_kb is not None and memory.opened
            else "-"
        )
        met = (
            memory.hwm_kb is not None
            and memory.opened == memory.streams
            and memory.hwm_kb / 1024 < RSS_TARGET_MB
        )
        memory_row = (
            str(memory.streams),
            str(memory.opened),
            f"{memory.open_seconds:.1f}",
            _mb(memory.rss_before_kb),
            _mb(memory.rss_kb),
            _mb(memory.hwm_kb),
            per_stream,
            f"VmHWM < {RSS_TARGET_MB:g} MB",
            _verdict(met),
        )
    lines = [
        f"store: postgres (scratch database); servers: python -m loopgate serve subprocesses,"
        f" log level warning; fd limit {report.fd_limit}",
        *([f"SSE parts NOT RUN: {report.sse_missing}"] if report.sse_missing is not None else []),
        "",
        f"push latency: {settings.waiters} concurrent waiters, answered one at a time by"
        " POST /v1/requests/{id}/response (one process: waiters and answers on A;"
        " two processes: waiters on A, answers on B, same database)",
        *table_lines(push_header, push_rows),
        "",
        f"raw floor: Postgres NOTIFY -> LISTEN with asyncpg, {settings.round_trips} round trips"
        f" one at a time after {NOTIFY_WARMUP} warm-up",
        *table_lines(floor_header, [floor_row]),
        "",
        f"memory: one server holding {settings.streams} idle GET /v1/events SSE streams"
        " (/proc/<pid>/status)",
        *table_lines(memory_header, [memory_row]),
        "",
        "push latency = waiter received the answer - answer POST returned (perf_counter, client);"
        " long-poll: response read; SSE: the request.response_received message read."
        " waiter first = received before the POST returned, counted as 0;"
        " sent->received = waiter received - answer POST sent."
        " floor = pg_notify sent -> listener callback; after-return = pg_notify returned ->"
        " listener callback (negatives as 0). KB/stream = (VmRSS - idle RSS) / streams.",
    ]
    return "\n".join(lines)


def errors_of(report: Report) -> list[str]:
    return [
        *(
            f"{push.mode}, {push.transport}: {message}"
            for push in report.pushes
            for message in push.wake.errors
        ),
        *(f"memory: {message}" for message in report.memory.errors),
        *(f"floor: {message}" for message in report.floor.errors),
    ]


# --- command line -------------------------------------------------------------------------


def add_subcommand(subcommands: Any) -> None:
    """Register ``push`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "push",
        help="push latency of long-poll and SSE (one and two processes), stream memory,"
        " NOTIFY floor",
        description=(
            "Push latency (answer POST returned -> waiter received) of long-polls and SSE"
            " streams, in one server and across two servers on one Postgres database; the"
            " RSS of one server holding many idle SSE streams; and the raw Postgres"
            " NOTIFY -> LISTEN round trip."
        ),
        epilog=(
            "Postgres only: a fresh scratch database, dropped at the end, and loopgate serve"
            " subprocesses on loopback. About a minute with the defaults."
        ),
    )
    parser.add_argument(
        "--waiters", type=bounded_int(1, MAX_WAITERS), default=DEFAULT_WAITERS, metavar="W",
        help="concurrent waiters per push-latency run (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--streams", type=bounded_int(1, MAX_STREAMS), default=DEFAULT_STREAMS, metavar="S",
        help="idle SSE streams held open for the memory reading (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--round-trips", type=bounded_int(1, 100_000), default=DEFAULT_ROUND_TRIPS,
        metavar="N", help="NOTIFY -> LISTEN round trips for the floor (default: %(default)s)",
    )  # fmt: skip
    add_database_url(parser, postgres_only=False)
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the tables go to stdout. Exit status 1 if anything failed."""
    settings = Settings(
        waiters=args.waiters,
        streams=args.streams,
        round_trips=args.round_trips,
        admin_url=admin_url(args),
    )
    # The client holds every stream (or waiter plus creation connections) at once, and the
    # servers inherit the limit, each holding the other end.
    needed = max(args.streams, args.waiters + CREATE_CONCURRENCY) + FD_HEADROOM
    fd_limit = raise_fd_limit(needed)
    report = run_benchmark("push", run(settings, fd_limit))
    if report is None:
        return INTERRUPTED
    return finish(format_report(report), errors_of(report))
