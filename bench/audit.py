"""``python -m bench audit``: audit export, chain verification and projection rebuild at scale.

A by-hand benchmark: it prints figures next to the targets and asserts nothing.

1. **Log:** ``--events`` realistic events are appended THROUGH THE STORE
   (``loopgate.store.open_store(url)``, then ``store.append()``; no HTTP) into a
   scratch database, by ``--concurrency`` asyncio workers. First one
   ``SessionRegistered`` per session (8 sessions in each of 4 tenants), then per
   request two appends to ``request-<id>``: ``[RequestCreated, RequestDelivered]``
   at expected version 0 (message of 60-200 characters, 2-3 options, a small
   metadata dict; delivered on Telegram with the session's chat id and a
   message id), then the decision at expected version 2: ``ResponseReceived``
   (80 %), ``RequestExpired`` (12 %) or ``RequestCancelled`` (8 %). The last
   request may be cut short (left pending) so the log holds exactly N events.
2. **Export:** ``loopgate.audit.export.export_batches(store, ExportFilter())`` with
   every batch encoded by ``ndjson()`` and written to ``--output`` (default
   ``/dev/null``), in a subprocess (``python -m bench.audit --child export``)
   that reports its own time and peak RSS (``VmHWM``). It runs twice: once the
   log holds N/10 events and once it holds N, so the two peaks show whether the
   export's memory grows with the log. The floor is the same subprocess that
   only imports ``loopgate.audit.export`` and opens the store.
3. **Verify:** ``loopgate.audit.verify.verify_log(store)`` over the N events, in this process.
4. **Rebuild:** ``store.rebuild_projections()`` in a subprocess too (``--child
   rebuild``), at N/10 and at N, so its peak RSS shows whether the rebuild's
   memory grows with the log.

Every run works in a fresh database: ``loopgate_bench_<random>`` created through
the admin URL and dropped with ``WITH (FORCE)`` at the end, or a SQLite file in
a temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from bench.append import cancel_on_sigterm, postgres_scratch, sqlite_scratch, table_lines
from bench.cli import (
    INTERRUPTED,
    BenchError,
    add_database_url,
    admin_url,
    bounded_int,
    check_store_options,
    finish,
    progress,
    run_benchmark,
)
from bench.push import proc_status_kb
from loopgate.audit.export import ExportFilter, export_batches, ndjson
from loopgate.audit.verify import verify_log
from loopgate.events import (
    Event,
    Meta,
    Option,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestExpired,
    ResponseReceived,
    SessionRegistered,
)
from loopgate.store import open_store
from loopgate.store.base import EventStore

DEFAULT_EVENTS = 1_000_000
MIN_EVENTS = 1_000
MAX_EVENTS = 50_000_000
DEFAULT_CONCURRENCY = 64
MAX_CONCURRENCY = 1000
PROGRESS_SECONDS = 5.0

EXPORT_TARGET = 50_000
"""Export target: at least this many events/s."""
RSS_RATIO_TARGET = 1.10
"""Export peak RSS at N over its peak at N/10: at most this, i.e. independent of log size."""
REBUILD_TARGET_SECONDS = 60.0
REBUILD_TARGET_EVENTS = 1_000_000
"""Rebuild target (Postgres): under 60 s for 1M events, scaled linearly to N."""

TENANTS = ("local", "user-3f9a2c", "user-81c24e", "user-d04e77")
SESSIONS_PER_TENANT = 8
CLIENTS = ("claude-code", "deploy-bot", "ci-runner", "ops-agent", "billing-agent")

_WORD_TEXT = (
    "deploy build release rollback migrate database schema production staging canary"
    " cluster node restart service payment refund invoice customer account delete archive"
    " backup restore certificate rotate secret token scale replicas traffic region cache"
    " purge index rebuild merge branch approve pull request hotfix config flag enable"
    " disable quota limit alert incident page on-call vendor contract budget"
)
_WORDS = tuple(_WORD_TEXT.split())
_OPTION_SETS = (
    (Option(label="Approve", approves=True), Option(label="Reject", approves=False)),
    (Option(label="Yes", approves=True), Option(label="No", approves=False)),
    (
        Option(label="Approve", approves=True),
        Option(label="Reject", approves=False),
        Option(label="Defer"),
    ),
    (Option(label="Staging"), Option(label="Production"), Option(label="Skip", approves=False)),
)
_ENVIRONMENTS = ("production", "staging", "eu-west-1", "us-east-2")


# --- the workload ------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One registered agent session and who acts for it."""

    session_id: str
    client_id: str
    telegram_id: int
    tenant: str
    api_key: str


def make_sessions() -> list[Session]:
    sessions = []
    for t, tenant in enumerate(TENANTS):
        for s in range(SESSIONS_PER_TENANT):
            sessions.append(
                Session(
                    session_id=f"sess-{uuid.uuid4().hex[:12]}",
                    client_id=CLIENTS[(t + s) % len(CLIENTS)],
                    telegram_id=100_000_000 + t * 1_000 + s,
                    tenant=tenant,
                    api_key=f"apikey:{uuid.uuid4().hex[:16]}",
                )
            )
    return sessions


def message_text(rng: random.Random) -> str:
    """A question of 60 to 200 characters."""
    length = rng.randint(60, 200)
    words: list[str] = []
    size = 0
    while size < length:
        word = rng.choice(_WORDS)
        words.append(word)
        size += len(word) + 1
    return (" ".join(words)[: length - 1].rstrip() + "?").capitalize()


def request_events(
    rng: random.Random, session: Session, message_id: int, now: datetime
) -> tuple[str, list[Event], Meta, Event, Meta]:
    """One request's stream, its first append (created + delivered) and its decision."""
    request_id = uuid.uuid4().hex
    options = rng.choice(_OPTION_SETS)
    timeout = rng.choice((300, 600, 3600))
    created = RequestCreated(
        request_id=request_id,
        session_id=session.session_id,
        client_id=session.client_id,
        message=message_text(rng),
        request_type="confirmation" if len(options) == 2 else "choice",
        options=options,
        metadata={
            "env": rng.choice(_ENVIRONMENTS),
            "build": f"{rng.getrandbits(28):07x}",
            "ticket": f"OPS-{rng.randint(1000, 9999)}",
        },
        timeout_seconds=timeout,
        created_at=now,
        expires_at=now + timedelta(seconds=timeout),
    )
    delivered = RequestDelivered(
        request_id=request_id,
        channel="telegram",
        external_message_id=str(message_id),
        chat_id=session.telegram_id,
        delivered_at=now + timedelta(milliseconds=rng.randint(150, 900)),
    )
    first_meta = Meta(actor=session.api_key, tenant=session.tenant, correlation_id=uuid.uuid4().hex)
    roll = rng.random()
    decision: Event
    if roll < 0.80:
        option = rng.choice(options)
        decision = ResponseReceived(
            request_id=request_id,
            responder=f"telegram:{session.telegram_id}",
            option=option.label,
            approved=option.approves is not False,
            channel="telegram",
            responded_at=now + timedelta(seconds=rng.uniform(2, timeout * 0.9)),
        )
        decision_meta = Meta(actor=f"telegram:{session.telegram_id}", tenant=session.tenant)
    elif roll < 0.92:
        decision = RequestExpired(
            request_id=request_id,
            on_timeout="reject",
            approved=False,
            expired_at=now + timedelta(seconds=timeout),
        )
        decision_meta = Meta(actor="system", tenant=session.tenant)
    else:
        decision = RequestCancelled(
            request_id=request_id,
            reason="superseded by a newer request",
            cancelled_at=now + timedelta(seconds=rng.uniform(1, 60)),
        )
        decision_meta = Meta(
            actor=session.api_key, tenant=session.tenant, correlation_id=uuid.uuid4().hex
        )
    return f"request-{request_id}", [created, delivered], first_meta, decision, decision_meta


@dataclass
class Generator:
    """Appends requests until the log holds ``target`` events; shared by the workers."""

    store: EventStore
    sessions: list[Session]
    target: int = 0
    reserved: int = 0
    appended: int = 0
    seconds: float = 0.0
    message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def reserve(self) -> int:
        """How many events the next request may append (0: the target is reached)."""
        take = min(3, self.target - self.reserved)
        self.reserved += max(take, 0)
        return max(take, 0)

    async def register_sessions(self) -> None:
        now = datetime.now(UTC)
        for session in self.sessions:
            event = SessionRegistered(
                session_id=session.session_id,
                client_id=session.client_id,
                telegram_id=session.telegram_id,
                registered_at=now,
            )
            meta = Meta(actor=session.api_key, tenant=session.tenant)
            await self.store.append(f"session-{session.session_id}", 0, [event], meta)
        self.reserved = self.appended = len(self.sessions)

    async def worker(self, seed: int) -> None:
        rng = random.Random(seed)
        while take := self.reserve():
            session = rng.choice(self.sessions)
            stream, first, meta, decision, decision_meta = request_events(
                rng, session, next(self.message_ids), datetime.now(UTC)
            )
            await self.store.append(stream, 0, first[:take], meta)
            self.appended += min(take, 2)
            if take == 3:
                await self.store.append(stream, 2, [decision], decision_meta)
                self.appended += 1

    async def fill(self, target: int, concurrency: int) -> None:
        """Append until the log holds ``target`` events, showing progress on stderr."""
        self.target = target
        start = time.perf_counter()
        reporter = asyncio.create_task(self._report(start))
        workers = [
            asyncio.create_task(self.worker(self.reserved * 1_000 + i)) for i in range(concurrency)
        ]
        try:
            await asyncio.gather(*workers)
        except Exception as exc:
            raise BenchError(f"append failed: {exc!r}") from exc
        finally:
            for task in (*workers, reporter):
                task.cancel()
            await asyncio.gather(*workers, reporter, return_exceptions=True)
            self.seconds += time.perf_counter() - start
        head = await self.store.head()
        if head != target:
            raise BenchError(f"the log head is {head}, expected {target}")

    async def _report(self, start: float) -> None:
        first = self.appended
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            rate = (self.appended - first) / (time.perf_counter() - start)
            progress(f"appended {self.appended:,}/{self.target:,} events ({rate:,.0f} events/s)")


# --- the export subprocess ------------------------------------------------------------


class ChildResult(msgspec.Struct, frozen=True):
    """What ``python -m bench.audit --child`` prints: its export and its peak memory."""

    events: int
    bytes: int
    seconds: float
    hwm_kb: int
    maxrss_kb: int


async def child_run(mode: str, url: str, output: str) -> ChildResult:
    """``floor``: open the store and close it; ``export``: export the whole log to ``output``;
    ``rebuild``: rebuild the projections."""
    store = await open_store(url, migrate=False)
    events = written = 0
    start = time.perf_counter()
    try:
        if mode == "export":
            with open(output, "wb") as out:  # noqa: ASYNC230 - the export's own file writes
                async for records in export_batches(store, ExportFilter()):
                    written += out.write(ndjson(records))
                    events += len(records)
        elif mode == "rebuild":
            events = await store.rebuild_projections()
        else:
            await store.head()
    finally:
        seconds = time.perf_counter() - start
        await store.close()
    return ChildResult(
        events=events,
        bytes=written,
        seconds=seconds,
        hwm_kb=proc_status_kb(os.getpid()).get("VmHWM", 0),
        maxrss_kb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    )


def child_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit")
    parser.add_argument("--child", required=True, choices=("floor", "export", "rebuild"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--output", default=os.devnull)
    args = parser.parse_args(argv)
    result = asyncio.run(child_run(args.child, args.url, args.output))
    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
    return 0


def child_env() -> dict[str, str]:
    """This environment with the repo on the path, so ``-m bench.audit`` imports."""
    env = dict(os.environ)
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo, env.get("PYTHONPATH")) if p)
    return env


async def run_child(mode: str, url: str, output: str) -> ChildResult:
    """Run one export subprocess (its stderr passes through); its report."""
    argv = [sys.executable, "-m", "bench.audit", "--child", mode, "--url", url]
    process = await asyncio.create_subprocess_exec(
        *argv, "--output", output, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, env=child_env(),
    )  # fmt: skip
    try:
        stdout, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise BenchError(f"the {mode} subprocess exited with status {process.returncode}")
    result = msgspec.json.decode(stdout.strip().splitlines()[-1], type=ChildResult)
    progress(
        f"{mode}: {result.events:,} events in {result.seconds:.2f} s"
        f" ({_rate(result.events, result.seconds)} events/s),"
        f" {result.bytes / 2**20:,.0f} MiB written, VmHWM {_mib(result.hwm_kb)} MiB"
    )
    return result


# --- running -----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What ``python -m bench audit`` was asked to do."""

    store: str
    events: int
    concurrency: int
    output: str
    admin_url: str


@dataclass(frozen=True)
class Timed:
    events: int
    seconds: float


@dataclass(frozen=True)
class Report:
    """Everything one run measured."""

    settings: Settings
    generate: Timed
    floor: ChildResult
    small: ChildResult
    full: ChildResult
    verify: Timed
    verify_ok: bool
    verify_reason: str | None
    small_rebuild: ChildResult
    rebuild: ChildResult
    errors: list[str]


async def timed(label: str, events: int, call: Callable[[], Any]) -> tuple[Timed, Any]:
    progress(f"{label} over {events:,} events ...")
    start = time.perf_counter()
    result = await call()
    seconds = time.perf_counter() - start
    progress(f"{label}: {seconds:.2f} s ({_rate(events, seconds)} events/s)")
    return Timed(events, seconds), result


async def measure(url: str, settings: Settings) -> Report:
    n, small_n = settings.events, settings.events // 10
    errors: list[str] = []
    store = await open_store(url)
    try:
        generator = Generator(store, make_sessions())
        await generator.register_sessions()
        progress(f"generating {small_n:,} events (concurrency {settings.concurrency})")
        await generator.fill(small_n, settings.concurrency)
        floor = await run_child("floor", url, settings.output)
        small = await run_child("export", url, settings.output)
        small_rebuild = await run_child("rebuild", url, settings.output)
        progress(f"generating up to {n:,} events")
        await generator.fill(n, settings.concurrency)
        generate = Timed(n, generator.seconds)
        progress(f"generated {n:,} events in {generator.seconds:.1f} s")
        full = await run_child("export", url, settings.output)
        for result, expected in ((small, small_n), (full, n)):
            if result.events != expected:
                errors.append(f"export returned {result.events} events, expected {expected}")
        verify, verification = await timed("verify_log", n, lambda: verify_log(store))
        if verification.events != n or not verification.ok:
            errors.append(f"verify_log: {verification}")
        rebuild = await run_child("rebuild", url, settings.output)
        for result, expected in ((small_rebuild, small_n), (rebuild, n)):
            if result.events != expected:
                errors.append(f"rebuild_projections replayed {result.events}, expected {expected}")
    finally:
        await store.close()
    return Report(
        settings, generate, floor, small, full, verify, verification.ok, verification.reason,
        small_rebuild, rebuild, errors,
    )  # fmt: skip


async def run(settings: Settings) -> Report:
    """One run in a fresh scratch database."""
    cancel_on_sigterm()
    scratch = (
        postgres_scratch(settings.admin_url, (1,))  # appenders share the store's pool
        if settings.store == "postgres"
        else sqlite_scratch()
    )
    async with scratch as url:
        return await measure(url, settings)


# --- output ------------------------------------------------------------------------


def _rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f}" if seconds > 0 else "-"


def _mib(kb: int) -> str:
    return f"{kb / 1024:,.1f}"


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def format_report(report: Report) -> str:
    """The results as a plain-text table, targets next to the figures."""
    s = report.settings
    small, full, floor = report.small, report.full, report.floor
    rss_ratio = full.hwm_kb / small.hwm_kb if small.hwm_kb else float("inf")
    rebuilds = report.small_rebuild, report.rebuild
    rebuild_ratio = rebuilds[1].hwm_kb / rebuilds[0].hwm_kb if rebuilds[0].hwm_kb else float("inf")
    rebuild_limit = REBUILD_TARGET_SECONDS * s.events / REBUILD_TARGET_EVENTS
    rebuild_target = f"< {rebuild_limit:g} s" + (
        "" if s.events == REBUILD_TARGET_EVENTS else " (60 s/1M scaled)"
    )

    def export_row(label: str, r: ChildResult) -> tuple[str, ...]:
        rate = r.events / r.seconds if r.seconds else 0.0
        target = f">= {EXPORT_TARGET:,}/s"
        return (label, f"{r.events:,}", f"{r.seconds:.2f}", _rate(r.events, r.seconds),
                _mib(r.hwm_kb), target, _verdict(rate >= EXPORT_TARGET))  # fmt: skip

    header = ("step", "events", "seconds", "events/s", "peak RSS MiB", "target", "result")
    rows = [
        ("generate (store.append)", f"{s.events:,}", f"{report.generate.seconds:.1f}",
         _rate(s.events, report.generate.seconds), "-", "-", "-"),
        ("export floor (import+open)", "-", "-", "-", _mib(floor.hwm_kb), "-", "-"),
        export_row("export ndjson @ N/10", small),
        export_row("export ndjson @ N", full),
        ("export RSS N / N/10", "-", "-", "-", f"{rss_ratio:.2f}x",
         f"<= {RSS_RATIO_TARGET:.2f}x", _verdict(rss_ratio <= RSS_RATIO_TARGET)),
        ("verify_log", f"{report.verify.events:,}", f"{report.verify.seconds:.2f}",
         _rate(report.verify.events, report.verify.seconds), "-", "-",
         "chain ok" if report.verify_ok else "BROKEN"),
        ("rebuild @ N/10", f"{rebuilds[0].events:,}", f"{rebuilds[0].seconds:.2f}",
         _rate(rebuilds[0].events, rebuilds[0].seconds), _mib(rebuilds[0].hwm_kb), "-", "-"),
        ("rebuild @ N", f"{rebuilds[1].events:,}", f"{rebuilds[1].seconds:.2f}",
         _rate(rebuilds[1].events, rebuilds[1].seconds), _mib(rebuilds[1].hwm_kb),
         rebuild_target if s.store == "postgres" else f"{rebuild_target} (postgres)",
         _verdict(rebuilds[1].seconds < rebuild_limit) if s.store == "postgres" else "-"),
        ("rebuild RSS N / N/10", "-", "-", "-", f"{rebuild_ratio:.2f}x",
         f"<= {RSS_RATIO_TARGET:.2f}x", _verdict(rebuild_ratio <= RSS_RATIO_TARGET)),
    ]  # fmt: skip
    above_floor = (
        f"{(full.hwm_kb - floor.hwm_kb) / 1024:,.1f} MiB at N vs"
        f" {(small.hwm_kb - floor.hwm_kb) / 1024:,.1f} MiB at N/10"
    )
    lines = [
        f"store: {s.store}  N = {s.events:,} events (generated with {s.concurrency} concurrent"
        f" appenders), export written to {s.output}",
        f"export: {full.bytes / 2**20:,.0f} MiB of NDJSON at N;"
        f" peak RSS above the floor: {above_floor}",
        "",
        *table_lines(header, rows),
        "",
        "peak RSS = the export or rebuild subprocess's VmHWM; floor = the same subprocess"
        " that only imports loopgate.audit.export and opens the store",
    ]
    if not report.verify_ok:
        lines.append(f"verify_log: {report.verify_reason}")
    return "\n".join(lines)


# --- command line --------------------------------------------------------------------


def add_subcommand(subcommands: Any) -> None:
    """Register ``audit`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "audit",
        help="audit export, verify_log and rebuild_projections over a large log",
        description=(
            "Export (NDJSON), hash-chain verification and projection rebuild over a log of"
            " --events realistic events, appended through the store into a scratch database."
        ),
        epilog=(
            "The log is filled to N/10, exported in a subprocess (time and peak RSS), filled"
            " to N and exported again; then verify_log runs over N. rebuild_projections runs in"
            " a subprocess at N/10 and at N (time and peak RSS)."
            " Targets: export >= 50,000 events/s with peak RSS independent of the log size;"
            " rebuild of 1M events < 60 s on Postgres. 1M events take a few minutes."
        ),
    )
    parser.add_argument(
        "--store", required=True, choices=("sqlite", "postgres"), help="the backend to measure"
    )
    parser.add_argument(
        "--events", type=bounded_int(MIN_EVENTS, MAX_EVENTS), default=DEFAULT_EVENTS,
        metavar="N", help="events in the log (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency", type=bounded_int(1, MAX_CONCURRENCY), default=DEFAULT_CONCURRENCY,
        metavar="C", help="concurrent appenders filling the log (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--output", default=os.devnull, metavar="PATH",
        help="where the export writes its NDJSON (default: %(default)s)",
    )  # fmt: skip
    add_database_url(
        parser, postgres_only=True, note="; sqlite always uses a file in a temporary directory"
    )
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the table goes to stdout. Exit status 1 if anything failed."""
    check_store_options(args)
    settings = Settings(
        store=args.store,
        events=args.events,
        concurrency=args.concurrency,
        output=args.output,
        admin_url=admin_url(args),
    )
    report = run_benchmark("audit", run(settings), database_error="database error: ")
    if report is None:
        return INTERRUPTED
    return finish(format_report(report), report.errors)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(child_main())
