"""``python -m bench hitl``: request creation over HTTP, and long-poll wake latency.

Everything goes over real HTTP on loopback, to servers running in their own
processes, so the load generator (this process) never shares the server's
event loop:

1. **Baseline:** a bare aiohttp server (this module, run as a subprocess) whose
   ``POST /hitl/request`` decodes the JSON body and does one autocommitted
   ``INSERT`` of a request-shaped row (``bench append``'s baseline row and
   table), with the same driver as the store: an asyncpg pool with one
   connection per client worker, or one shared aiosqlite WAL connection with
   ``synchronous = FULL``.
2. **Loopgate creation:** ``python -m loopgate serve`` on the same kind of
   scratch database (log level warning, so no access-log lines), one session
   registered, then N client workers ``POST /hitl/request`` back to back for a
   fixed time. Throughput is reported as a ratio of the baseline's.
3. **Wake latency:** on the same Loopgate server, W new requests, W concurrent
   long-polls ``GET /hitl/poll?request_id=..&wait=60``, then the requests are
   answered one at a time (``POST /v1/requests/{id}/response``). For each, the
   wake latency is the time from the answer's response arriving to its
   long-poll's response arriving, both read with ``perf_counter`` here. The
   next answer is sent only once that long-poll returned, so wake-ups never
   overlap. A long-poll whose response arrives before its answer's response
   counts as 0 and is reported ("poll first").

The scratch databases are ``bench append``'s: a fresh ``loopgate_bench_<random>``
Postgres database dropped ``WITH (FORCE)`` at the end, or a SQLite file in a
temporary directory. The baseline writes to its own table in that database
before Loopgate starts, so the two never run at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import aiohttp
import msgspec
from aiohttp import web

from bench.append import (
    cancel_on_sigterm,
    make_baseline,
    postgres_scratch,
    sqlite_scratch,
    table_lines,
)
from bench.cli import (
    INTERRUPTED,
    BenchError,
    add_database_url,
    add_store_options,
    admin_url,
    bounded_int,
    check_store_options,
    finish,
    progress,
    run_benchmark,
)
from bench.measure import Sample, Timing, run_closed_loop

DEFAULT_CONCURRENCY = 64
DEFAULT_WAITERS = 1000
MAX_CONCURRENCY = 500
MAX_WAITERS = 10_000
CREATION_RATIO_TARGET = 0.5
WAKE_P99_TARGET_MS = 10.0

SESSION = {"session_id": "bench-session", "client_id": "bench-agent", "telegram_id": 123456789}
CREATE_BODY = msgspec.json.encode(
    {
        "session_id": "bench-session",
        "client_id": "bench-agent",
        "message": "Deploy build 4f2c1e to production?",
        "options": ["Approve", "Reject"],
        "timeout_seconds": 300,
    }
)
ANSWER_OPTION = "Approve"
ANSWER_BODY = msgspec.json.encode({"option": ANSWER_OPTION})
JSON_HEADERS = {"Content-Type": "application/json"}

POLL_WAIT_SECONDS = 60
"""The long-poll's ``wait``: Loopgate's default ``requests.max_wait_seconds``."""
WAKE_TIMEOUT_SECONDS = 5.0
"""How long one answer's long-poll may take to return before it counts as lost."""
MAX_WAKE_ERRORS = 20
"""The wake phase stops after this many failures rather than grinding on."""
POLL_RAMP = 100
"""Long-polls opened per step, each step waiting until their requests are sent."""
SETTLE_SECONDS = 1.0
"""Pause after the last long-poll is sent, so the server has parked every one."""
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 30.0
FD_HEADROOM = 256
"""File descriptors beyond one per connection: database, logs, the interpreter."""


# --- processes, ports and limits -------------------------------------------------------


def raise_fd_limit(needed: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``needed`` (servers started later inherit it).

    Returns the soft limit after, saying so if it changed; fails if the hard limit is too low.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise SystemExit(
                f"bench hitl needs {needed} open files but the hard limit (ulimit -Hn) is "
                f"{hard}; lower --waiters or raise the limit"
            )
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit != soft:
        progress(f"raised the open-file limit from {soft} to {limit}")
    return limit


def free_port() -> int:
    """A TCP port that is free on loopback right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, all threads) a process has used; None off Linux."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def host_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine, all cores; None off Linux."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0]
    except OSError:
        return None
    ticks = [int(value) for value in first.split()[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks) - idle) / _CLOCK_TICKS, sum(ticks) / _CLOCK_TICKS


@dataclass
class Server:
    """A server subprocess listening on ``base_url``."""

    name: str
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path


def _open_log(path: Path) -> IO[bytes]:
    return path.open("wb")


def _log_tail(path: Path, lines: int = 20) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


async def _wait_ready(server: Server) -> None:
    """Wait until ``/healthz`` answers, or fail if the process exits or takes too long."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
    timeout = aiohttp.ClientTimeout(total=2)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while True:
            if server.process.returncode is not None:
                raise BenchError(f"{server.name} exited with status {server.process.returncode}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(f"{server.base_url}/healthz") as response:
                    if response.status == 200:
                        return
            if loop.time() > deadline:
                raise BenchError(f"{server.name} did not answer within {STARTUP_TIMEOUT_SECONDS} s")
            await asyncio.sleep(0.05)


async def _stop(server: Server) -> None:
    """SIGTERM (graceful shutdown), then SIGKILL if it takes too long."""
    process = server.process
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
    tail = [line for line in _log_tail(server.log_path) if line.strip()]
    if tail:
        progress(f"{server.name} logged (last lines of {server.log_path.name}):")
        for line in tail:
            progress(f"  {line}")


@asynccontextmanager
async def server_process(
    name: str, argv: Sequence[str], workdir: Path, env: dict[str, str]
) -> AsyncIterator[Server]:
    """Start ``argv`` with its output in a log file; yield once it serves; stop it on exit."""
    port = free_port()
    log_path = workdir / f"{name}.log"
    log_file = _open_log(log_path)
    try:
        process = await asyncio.create_subprocess_exec(
            *argv, "--port", str(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            cwd=workdir, env=env,
        )  # fmt: skip
    finally:
        log_file.close()  # the child has its own copy
    server = Server(name, process, f"http://127.0.0.1:{port}", log_path)
    try:
        await _wait_ready(server)
        progress(f"{name} listening on {server.base_url} (pid {process.pid})")
        yield server
    finally:
        await _stop(server)  # also shows what it logged, e.g. why it did not start


def child_env() -> dict[str, str]:
    """The servers' environment: this one, plus the repo on the path, quiet logs, no limits."""
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    env.update(
        LOOPGATE_LOG__LEVEL="warning",  # no per-request "http" info line
        LOOPGATE_LOG__FORMAT="json",
        LOOPGATE_REQUESTS__MAX_WAIT_SECONDS=str(POLL_WAIT_SECONDS),
        LOOPGATE_SERVER__SHUTDOWN_TIMEOUT_SECONDS="2",
        LOOPGATE_DATABASE__MIGRATE_ON_START="true",
        # Flat out: the benchmarks measure the server, not its rate limits.
        LOOPGATE_LIMITS__CREATE_RATE="0",
        LOOPGATE_LIMITS__ANSWER_RATE="0",
        LOOPGATE_LIMITS__LOGIN_RATE="0",
        LOOPGATE_LIMITS__MAX_WAITERS="0",
        LOOPGATE_LIMITS__MAX_WAITERS_PER_WORKSPACE="0",
    )
    return env


def loopgate_argv(url: str) -> list[str]:
    return [sys.executable, "-m", "loopgate", "serve", "--db", url, "--host", "127.0.0.1"]


def baseline_argv(store: str, url: str, connections: int) -> list[str]:
    return [sys.executable, "-m", "bench.hitl", "--store", store, "--url", url,
            "--connections", str(connections)]  # fmt: skip


# --- the baseline server (run in its own process: python -m bench.hitl ...) -------------


async def serve_baseline(store: str, url: str, port: int, connections: int) -> None:
    """A bare aiohttp server: ``POST /hitl/request`` does one INSERT + COMMIT."""
    baseline = make_baseline(store, url)
    await baseline.prepare()
    encoder = msgspec.json.Encoder()
    async with baseline.writers(connections) as ops:
        free: asyncio.Queue[Any] = asyncio.Queue()
        for op in ops:
            free.put_nowait(op)

        async def create(request: web.Request) -> web.Response:
            msgspec.json.decode(await request.read())  # decode the body, as any server would
            op = await free.get()
            try:
                await op()
            finally:
                free.put_nowait(op)
            body = {"success": True, "request_id": uuid.uuid4().hex, "status": "pending"}
            return web.Response(body=encoder.encode(body), content_type="application/json")

        async def healthz(request: web.Request) -> web.Response:
            return web.Response(body=b'{"status":"ok"}', content_type="application/json")

        app = web.Application()
        app.router.add_post("/hitl/request", create)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await web.TCPSite(runner, "127.0.0.1", port).start()
            await stop.wait()
        finally:
            await runner.cleanup()


def baseline_server_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hitl", description=__doc__)
    parser.add_argument("--store", required=True, choices=("sqlite", "postgres"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--connections", required=True, type=int)
    args = parser.parse_args(argv)
    asyncio.run(serve_baseline(args.store, args.url, args.port, args.connections))
    return 0


# --- the client ------------------------------------------------------------------------------


class HttpError(BenchError):
    """An unexpected HTTP status."""


def client_session(connections: int, total_timeout: float = HTTP_TIMEOUT_SECONDS) -> Any:
    """One keep-alive client with room for ``connections`` connections at once."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=total_timeout),
    )


async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> bytes:
    """POST a JSON body; the response body, or ``HttpError`` unless the status is 200."""
    async with http.post(url, data=body, headers=JSON_HEADERS) as response:
        raw = await response.read()
        if response.status != 200:
            raise HttpError(f"POST {url}: HTTP {response.status}: {raw[:300]!r}")
    return raw


@dataclass(frozen=True)
class Usage:
    """CPU used while a measurement ran, as fractions of one core (host: of all cores)."""

    server: float | None
    client: float
    host: float | None


class CpuMeter:
    """CPU of the server, of this process and of the machine, between start and stop."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.wall = time.perf_counter()
        self.client = time.process_time()
        self.server = process_cpu(server_pid)
        self.host = host_cpu()

    def usage(self) -> Usage:
        wall = time.perf_counter() - self.wall
        server_now, host_now = process_cpu(self.pid), host_cpu()
        server = (
            (server_now - self.server) / wall
            if server_now is not None and self.server is not None
            else None
        )
        host = None
        if host_now is not None and self.host is not None:
            busy, total = host_now[0] - self.host[0], host_now[1] - self.host[1]
            host = busy / total if total > 0 else None
        return Usage(server, (time.process_time() - self.client) / wall, host)


@dataclass(frozen=True)
class Creation:
    """One closed-loop creation measurement and the CPU it used."""

    sample: Sample
    usage: Usage


async def measure_creation(server: Server, concurrency: int, timing: Timing) -> Creation:
    """``concurrency`` workers POST /hitl/request back to back for the timing's window."""
    url = f"{server.base_url}/hitl/request"
    async with client_session(concurrency) as http:
        meter = CpuMeter(server.process.pid)
        ops = [partial(post, http, url, CREATE_BODY)] * concurrency
        sample = await run_closed_loop(ops, timing)
        usage = meter.usage()
    progress(
        f"{server.name} creation: {sample.rate:,.0f}/s, p50 {_ms(sample.percentile(0.5))} ms,"
        f" p99 {_ms(sample.percentile(0.99))} ms"
        + (f", {len(sample.errors)} error(s)" if sample.errors else "")
    )
    return Creation(sample, usage)


async def create_requests(
    base_url: str, count: int, concurrency: int, errors: list[str]
) -> list[str]:
    """Create ``count`` requests, ``concurrency`` at a time; their ids in creation order.

    A failed creation is recorded in ``errors`` and replaced by another, up to
    ``count`` failures in all, so one flaky response does not void the wake run.
    """
    url = f"{base_url}/hitl/request"
    ids: list[str] = []
    failures: list[Exception] = []

    async def worker(http: aiohttp.ClientSession) -> None:
        while len(ids) < count and len(failures) < count:
            try:
                raw = await post(http, url, CREATE_BODY)
            except (HttpError, aiohttp.ClientError, TimeoutError) as exc:
                failures.append(exc)
                continue
            if len(ids) < count:
                ids.append(msgspec.json.decode(raw)["request_id"])

    async with client_session(concurrency) as http, asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(worker(http))
    if failures:
        errors.append(f"{len(failures)} request creation(s) failed, first: {failures[0]!r}")
        progress(f"{len(failures)} request creation(s) failed, first: {failures[0]!r}")
    return ids


@dataclass(frozen=True)
class PollResult:
    """What a long-poll got back, and when (``perf_counter``)."""

    at: float
    status: int = 0
    body: bytes = b""
    error: str | None = None


@dataclass
class Wake:
    """The wake-latency measurement."""

    waiters: int
    created_rate: float = 0.0
    latencies: list[float] = field(default_factory=list)
    """Per answer, seconds from the answer's response to the long-poll's (negatives kept)."""
    answer_latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def woken(self) -> int:
        return len(self.latencies)

    @property
    def poll_first(self) -> int:
        return sum(1 for latency in self.latencies if latency < 0)

    def percentile(self, q: float) -> float:
        """Nearest-rank quantile of the wake latency, negatives clamped to 0."""
        return quantile([max(0.0, latency) for latency in self.latencies], q)


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def open_polls(
    base_url: str,
    ids: Sequence[str],
    http: aiohttp.ClientSession,
    sent: list[int],
    polls: dict[str, asyncio.Task[PollResult]],
) -> None:
    """Start one long-poll per id into ``polls``, ``POLL_RAMP`` at a time, until all are sent."""
    url = f"{base_url}/hitl/poll"
    loop = asyncio.get_running_loop()

    async def poll(request_id: str) -> PollResult:
        params = {"request_id": request_id, "wait": str(POLL_WAIT_SECONDS)}
        try:
            async with http.get(url, params=params) as response:
                body = await response.read()
            return PollResult(time.perf_counter(), response.status, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return PollResult(time.perf_counter(), error=repr(exc))

    deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
    for start in range(0, len(ids), POLL_RAMP):
        for request_id in ids[start : start + POLL_RAMP]:
            polls[request_id] = asyncio.create_task(poll(request_id))
        # A long-poll that failed before sending is done; it shows up as an error later.
        while sent[0] + sum(task.done() for task in polls.values()) < len(polls):
            if loop.time() > deadline:
                raise BenchError(f"only {sent[0]} of {len(ids)} long-polls could be sent")
            await asyncio.sleep(0.01)


Waiters = dict[str, asyncio.Task[PollResult]]
"""One waiting task per request id, each returning what its waiter received."""
OpenWaiters = Callable[[aiohttp.ClientSession, list[int], Waiters], Awaitable[None]]
"""Start the waiters into the dict, on the session; the list counts requests sent."""
Check = Callable[[PollResult], str | None]
"""Why a waiter's result is not the answer, or None if it is."""


async def create_for_wake(base_url: str, count: int, concurrency: int) -> tuple[Wake, list[str]]:
    """A new :class:`Wake` for ``count`` waiters, and the requests they wait on."""
    wake = Wake(count)
    started = time.perf_counter()
    ids = await create_requests(base_url, count, concurrency, wake.errors)
    wake.created_rate = len(ids) / (time.perf_counter() - started)
    return wake, ids


async def cancel_all(tasks: Waiters) -> None:
    for task in tasks.values():
        task.cancel()
    await asyncio.gather(*tasks.values(), return_exceptions=True)


@dataclass(frozen=True)
class WaitKind:
    """How waiters wait (long-poll, SSE, ...), and how they are named in messages."""

    open: OpenWaiters
    check: Check
    label: str
    """One waiter in an error message: ``{label} {request_id}: ...``."""
    plural: str
    """Waiters that returned early: ``{n} {plural} returned before any answer``."""


async def wait_and_answer(
    ids: Sequence[str],
    kind: WaitKind,
    answer_url: str,
    wake: Wake,
    announce: Callable[[int], str],
) -> None:
    """One waiter per id, then answer them one at a time on ``answer_url``, into ``wake``.

    ``announce(n)`` is the progress line once ``n`` waiters are waiting.
    """
    sent = [0]
    trace = aiohttp.TraceConfig()

    async def on_headers_sent(*_: Any) -> None:
        sent[0] += 1

    trace.on_request_headers_sent.append(on_headers_sent)
    waiters_http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=wake.waiters, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=POLL_WAIT_SECONDS + HTTP_TIMEOUT_SECONDS),
        trace_configs=[trace],
    )
    waiters: Waiters = {}
    async with waiters_http, client_session(1) as answers_http:
        try:
            first_at = asyncio.get_running_loop().time()
            await kind.open(waiters_http, sent, waiters)
            await asyncio.sleep(SETTLE_SECONDS)
            early = {rid for rid, task in waiters.items() if task.done()}
            if early:
                wake.errors.append(f"{len(early)} {kind.plural} returned before any answer")
            progress(announce(len(waiters) - len(early)))
            # Stop well before the first long-polls' own wait=60 runs out.
            deadline = first_at + POLL_WAIT_SECONDS - 2 * WAKE_TIMEOUT_SECONDS
            waiting = [i for i in ids if i not in early]
            await answer_each(answer_url, waiting, waiters, answers_http, wake, kind, deadline)
        finally:
            await cancel_all(waiters)


async def answer_each(
    answer_url: str,
    ids: Sequence[str],
    waiters: Waiters,
    http: aiohttp.ClientSession,
    wake: Wake,
    kind: WaitKind,
    deadline: float,
) -> None:
    """Answer each request, then wait for its waiter before answering the next."""
    loop = asyncio.get_running_loop()
    for request_id in ids:
        if len(wake.errors) >= MAX_WAKE_ERRORS or loop.time() > deadline:
            wake.errors.append(f"stopped after {wake.woken} wake-ups")
            return
        sent_at = time.perf_counter()
        try:
            raw = await post(http, f"{answer_url}/v1/requests/{request_id}/response", ANSWER_BODY)
        except (HttpError, aiohttp.ClientError, TimeoutError) as exc:
            wake.errors.append(f"answer {request_id}: {exc!r}")
            continue
        answered_at = time.perf_counter()
        if msgspec.json.decode(raw).get("status") != "answered":
            wake.errors.append(f"answer {request_id}: responded {raw[:300]!r}")
        try:
            result = await asyncio.wait_for(
                asyncio.shield(waiters[request_id]), WAKE_TIMEOUT_SECONDS
            )
        except TimeoutError:
            wake.errors.append(
                f"{kind.label} {request_id}: not woken within {WAKE_TIMEOUT_SECONDS} s"
            )
            continue
        problem = kind.check(result)
        if problem is not None:
            wake.errors.append(f"{kind.label} {request_id}: {problem}")
            continue
        wake.latencies.append(result.at - answered_at)
        wake.answer_latencies.append(answered_at - sent_at)


def poll_problem(result: PollResult) -> str | None:
    """Why a long-poll's response is not the decided request, or None if it is."""
    if result.error is not None:
        return result.error
    if result.status != 200:
        return f"HTTP {result.status}: {result.body[:300]!r}"
    body = msgspec.json.decode(result.body)
    if body.get("completed") is not True or body.get("response") != ANSWER_OPTION:
        return f"returned undecided: {result.body[:300]!r}"
    return None


def long_poll(base_url: str, ids: Sequence[str], label: str, plural: str) -> WaitKind:
    """Waiters that long-poll ``GET /hitl/poll`` on ``base_url``."""

    async def start(http: aiohttp.ClientSession, sent: list[int], waiters: Waiters) -> None:
        await open_polls(base_url, ids, http, sent, waiters)

    return WaitKind(start, poll_problem, label, plural)


def wake_summary(wake: Wake) -> str:
    """``woken N of W: p50 .. ms, p99 .. ms, max .. ms`` for the progress lines."""
    return (
        f"woke {wake.woken} of {wake.waiters}: p50 {_ms(wake.percentile(0.5))} ms,"
        f" p99 {_ms(wake.percentile(0.99))} ms, max {_ms(wake.percentile(1.0))} ms"
    )


async def measure_wake(server: Server, waiters: int, concurrency: int) -> Wake:
    """Create ``waiters`` requests, long-poll them all, answer them one at a time."""
    wake, ids = await create_for_wake(server.base_url, waiters, concurrency)
    progress(f"created {len(ids)} requests to wait on ({wake.created_rate:,.0f}/s)")
    kind = long_poll(server.base_url, ids, "long-poll", "long-poll(s)")
    await wait_and_answer(
        ids,
        kind,
        server.base_url,
        wake,
        lambda n: f"{n} long-polls waiting; answering one at a time",
    )
    progress(
        f"{wake_summary(wake)},"
        f" {wake.poll_first} long-poll(s) returned before their answer's response"
        + (f", {len(wake.errors)} error(s)" if wake.errors else "")
    )
    return wake


# --- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What ``python -m bench hitl`` was asked to do."""

    store: str
    concurrency: int
    waiters: int
    timing: Timing
    admin_url: str


@dataclass(frozen=True)
class Report:
    settings: Settings
    baseline: Creation
    loopgate: Creation
    wake: Wake
    fd_limit: int


async def run_servers(url: str, workdir: Path, settings: Settings, fd_limit: int) -> Report:
    """The baseline server, then Loopgate's: creation on both, then wake-ups on Loopgate."""
    env = child_env()
    # Postgres: one pooled connection per client worker; SQLite: that many writers
    # sharing the one connection, as in ``bench append``.
    argv = baseline_argv(settings.store, url, settings.concurrency)
    async with server_process("baseline", argv, workdir, env) as server:
        baseline = await measure_creation(server, settings.concurrency, settings.timing)
    async with server_process("loopgate", loopgate_argv(url), workdir, env) as server:
        async with client_session(1) as http:
            await post(http, f"{server.base_url}/hitl/register", msgspec.json.encode(SESSION))
        loopgate = await measure_creation(server, settings.concurrency, settings.timing)
        wake = await measure_wake(server, settings.waiters, settings.concurrency)
    return Report(settings, baseline, loopgate, wake, fd_limit)


async def run(settings: Settings, fd_limit: int) -> Report:
    """One benchmark run in a fresh scratch database and a temporary working directory."""
    cancel_on_sigterm()
    scratch = (
        postgres_scratch(settings.admin_url, (settings.concurrency,))
        if settings.store == "postgres"
        else sqlite_scratch()
    )
    with tempfile.TemporaryDirectory(prefix="loopgate_bench_hitl_") as directory:
        async with scratch as url:
            return await run_servers(url, Path(directory), settings, fd_limit)


# --- output ----------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _percent(fraction: float | None) -> str:
    return "-" if fraction is None else f"{fraction * 100:.0f} %"


def _creation_row(name: str, creation: Creation) -> tuple[str, ...]:
    sample, usage = creation.sample, creation.usage
    return (
        name,
        f"{sample.rate:,.0f}",
        _ms(sample.percentile(0.5)),
        _ms(sample.percentile(0.99)),
        _percent(usage.server),
        _percent(usage.client),
        _percent(usage.host),
        str(len(sample.errors)),
    )


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def format_report(report: Report) -> str:
    """The results as plain-text tables."""
    settings, wake = report.settings, report.wake
    timing = settings.timing
    ratio = (
        report.loopgate.sample.rate / report.baseline.sample.rate
        if report.baseline.sample.rate
        else math.nan
    )
    pool = (
        f"asyncpg pool of {settings.concurrency}"
        if settings.store == "postgres"
        else "one aiosqlite WAL connection, synchronous=FULL"
    )
    creation_header = ("server", "requests/s", "p50 ms", "p99 ms", "server CPU", "client CPU",
                       f"host CPU ({os.cpu_count()} cores)", "errors")  # fmt: skip
    wake_header = ("waiters", "woken", "wake p50 ms", "wake p99 ms", "wake max ms", "poll first",
                   "answer p50 ms", "answer p99 ms", "errors")  # fmt: skip
    wake_row = (
        str(wake.waiters),
        str(wake.woken),
        _ms(wake.percentile(0.5)),
        _ms(wake.percentile(0.99)),
        _ms(wake.percentile(1.0)),
        str(wake.poll_first),
        _ms(quantile(wake.answer_latencies, 0.5)),
        _ms(quantile(wake.answer_latencies, 0.99)),
        str(len(wake.errors)),
    )
    wake_p99_ms = wake.percentile(0.99) * 1e3
    failed = len(report.baseline.sample.errors) + len(report.loopgate.sample.errors)
    # A worker stops at its first error, so a rate with errors says nothing.
    creation_verdict = (
        f"loopgate / baseline: NOT MEASURED, {failed} creation error(s)"
        f" (target >= {CREATION_RATIO_TARGET:.2f}x)"
        if failed
        else f"loopgate / baseline: {ratio:.2f}x  (target >= {CREATION_RATIO_TARGET:.2f}x:"
        f" {_verdict(ratio >= CREATION_RATIO_TARGET)})"
    )
    rows = [_creation_row("baseline", report.baseline), _creation_row("loopgate", report.loopgate)]
    lines = [
        f"store: {settings.store}  (creation: {timing.seconds:g} s after {timing.warmup:g} s"
        f" warm-up at concurrency {settings.concurrency}; fd limit {report.fd_limit})",
        "baseline: bare aiohttp server (subprocess), POST /hitl/request = decode JSON +"
        f" one autocommit INSERT ({pool})",
        "loopgate: python -m loopgate serve (subprocess, log level warning), one session",
        "",
        f"request creation: POST /hitl/request, {settings.concurrency} keep-alive workers",
        *table_lines(creation_header, rows),
        creation_verdict,
        "",
        f"wake latency: {wake.waiters} concurrent GET /hitl/poll?wait={POLL_WAIT_SECONDS},"
        " answered one at a time by POST /v1/requests/{id}/response",
        *table_lines(wake_header, [wake_row]),
        f"wake p99: {wake_p99_ms:.2f} ms  (target < {WAKE_P99_TARGET_MS:g} ms:"
        f" {_verdict(wake.woken > 0 and wake_p99_ms < WAKE_P99_TARGET_MS)})",
        "",
        "wake = long-poll response received - answer response received (perf_counter, client);"
        " poll first = long-polls that returned before their answer's response, counted as 0;"
        " CPU = % of one core (host: of all cores) over warm-up + window",
    ]
    return "\n".join(lines)


def errors_of(report: Report) -> list[str]:
    return [
        *(f"baseline: {exc!r}" for exc in report.baseline.sample.errors),
        *(f"loopgate: {exc!r}" for exc in report.loopgate.sample.errors),
        *(f"wake: {message}" for message in report.wake.errors),
    ]


# --- command line ----------------------------------------------------------------------------


def add_subcommand(subcommands: Any) -> None:
    """Register ``hitl`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "hitl",
        help="requests/s over HTTP vs a bare INSERT server, and long-poll wake latency",
        description=(
            "Request creation over HTTP (POST /hitl/request) against a bare aiohttp server"
            " doing one INSERT per request, then the wake latency of concurrent long-polls."
        ),
        epilog=(
            "Both servers run as subprocesses on a free loopback port, one after the other,"
            " on a fresh scratch database. Wake latency: --waiters requests are long-polled"
            " (GET /hitl/poll?wait=60) and answered one at a time; each latency is from the"
            " answer's response to the long-poll's. About 30 s with the defaults."
        ),
    )
    add_store_options(
        parser,
        seconds=5.0,
        seconds_help="measuring time of each creation run",
        warmup_help="warm-up before each creation run, not counted",
    )
    parser.add_argument(
        "--concurrency", type=bounded_int(1, MAX_CONCURRENCY), default=DEFAULT_CONCURRENCY,
        metavar="N", help="concurrent client workers creating requests (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--waiters", type=bounded_int(1, MAX_WAITERS), default=DEFAULT_WAITERS, metavar="W",
        help="concurrent long-polls in the wake-latency run (default: %(default)s)",
    )  # fmt: skip
    add_database_url(parser, postgres_only=True)
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the tables go to stdout. Exit status 1 if anything failed."""
    check_store_options(args)
    settings = Settings(
        store=args.store,
        concurrency=args.concurrency,
        waiters=args.waiters,
        timing=Timing(warmup=args.warmup, seconds=args.seconds),
        admin_url=admin_url(args),
    )
    fd_limit = raise_fd_limit(args.waiters + args.concurrency + FD_HEADROOM)
    report = run_benchmark("hitl", run(settings, fd_limit))
    if report is None:
        return INTERRUPTED
    return finish(format_report(report), errors_of(report))


if __name__ == "__main__":
    sys.exit(baseline_server_main())
