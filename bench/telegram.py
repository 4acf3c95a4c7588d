"""``python -m bench telegram``: Telegram delivery and decision latency, each next to a floor.

One ``python -m loopgate serve`` subprocess in Telegram webhook mode on a fresh
scratch database (``bench append``'s), its Bot API being the local fake
(``tests/telegram/fake_bot_api.py``) served on this process's event loop. One
session is registered with ``telegram_id`` = the operator's chat. Then:

1. **Delivery floor:** a bare aiogram ``Bot`` (the same aiohttp session kind the
   server uses) calls ``send_message`` on the same fake N times, one at a time;
   latency = the call's round trip.
2. **Delivery:** N confirmation requests created one at a time with
   ``POST /hitl/request``, each with a unique message text; after each, the
   benchmark waits for the fake to answer the ``sendMessage`` carrying that text.
   Latency = the fake's answer (``Call.at``) - the POST's response read, both
   ``time.monotonic()`` here. A message answered before the POST returned
   counts as 0 ("sent first").
3. **Decision by press:** the N delivered requests are long-polled
   (``GET /hitl/poll?request_id=..&wait=60``), ``BATCH`` at a time, then after a
   settle each gets the operator's press of its first button ("Approve") as a
   ``POST /telegram/webhook`` update, one at a time, the next only once the
   previous long-poll returned. Latency = long-poll returned - press sent.
4. **Decision by API (floor):** N more requests, delivered the same way (not
   measured), long-polled the same way and answered one at a time with
   ``POST /v1/requests/{id}/response {"option": "Approve"}`` (``bench hitl``'s
   loop). Latency = long-poll returned - answer sent.

Targets (the issue's): a request reaches the operator "within a second"
(delivery p99 < 1000 ms) and "within 5 s" (every one, i.e. max < 5000 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import secrets
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
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
from bench.hitl import (
    ANSWER_OPTION,
    JSON_HEADERS,
    MAX_WAKE_ERRORS,
    POLL_WAIT_SECONDS,
    SETTLE_SECONDS,
    WAKE_TIMEOUT_SECONDS,
    HttpError,
    Server,
    Wake,
    _ms,
    _verdict,
    cancel_all,
    child_env,
    client_session,
    long_poll,
    loopgate_argv,
    post,
    quantile,
    server_process,
    wait_and_answer,
    wake_summary,
)

# The fake Bot API lives with the tests (tests/telegram/fake_bot_api.py), which import it as
# ``telegram.fake_bot_api`` with tests/ on the path; the benchmark does the same, here only.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from telegram.fake_bot_api import TEST_TOKEN, Call, FakeBotAPI, running_fake  # noqa: E402

DEFAULT_REQUESTS = 200
MAX_REQUESTS = 5000
WARMUP = 5
"""Requests (and floor sends) before the measured ones, not counted: first connections."""
BATCH = 100
"""Long-polls open at once in the decision runs, so a batch never nears their wait."""

OPERATOR = 4242
"""The registered session's ``telegram_id``: the operator's private chat."""
FLOOR_CHAT = 1001
"""The floor's sends go to another chat, so the operator's message ids stay the server's."""
SECRET = f"bench-{secrets.token_urlsafe(24)}"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
SESSION = {"session_id": "bench-telegram", "client_id": "bench-agent", "telegram_id": OPERATOR}

DELIVERY_TIMEOUT_SECONDS = 10.0
"""How long one request's message may take to reach the fake before it counts as lost."""
DELIVERY_P99_TARGET_MS = 1000.0
DELIVERY_MAX_TARGET_MS = 5000.0
STARTUP_NOTE = "Telegram on: the server imports aiogram, allow a few seconds"


# --- delivery ------------------------------------------------------------------------------


@dataclass
class Latencies:
    """One latency run: seconds per measured call (negatives kept), and what went wrong."""

    count: int
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return len(self.latencies)

    @property
    def first(self) -> int:
        """Measured calls whose end came before their start's reference point."""
        return sum(1 for latency in self.latencies if latency < 0)

    def percentile(self, q: float) -> float:
        """Nearest-rank quantile, negatives clamped to 0."""
        return quantile([max(0.0, latency) for latency in self.latencies], q)


def summary(run: Latencies) -> str:
    return (
        f"{run.done} of {run.count}: p50 {_ms(run.percentile(0.5))} ms,"
        f" p99 {_ms(run.percentile(0.99))} ms, max {_ms(run.percentile(1.0))} ms"
        + (f", {len(run.errors)} error(s)" if run.errors else "")
    )


async def measure_floor(fake: FakeBotAPI, count: int) -> Latencies:
    """A bare aiogram ``Bot.send_message`` round trip to the fake, ``count`` times."""
    # aiogram is imported here only, as the server imports it only with Telegram on.
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    run = Latencies(count)
    bot = Bot(TEST_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
    try:
        for index in range(WARMUP + count):
            started = time.monotonic()
            try:
                await bot.send_message(chat_id=FLOOR_CHAT, text=f"Bench floor {index}")
            except Exception as exc:
                run.errors.append(f"floor send {index}: {exc!r}")
                if len(run.errors) >= MAX_WAKE_ERRORS:
                    break
                continue
            if index >= WARMUP:
                run.latencies.append(time.monotonic() - started)
    finally:
        await bot.session.close()
    progress(f"floor (aiogram send_message -> fake): {summary(run)}")
    return run


@dataclass(frozen=True)
class Delivered:
    """A request whose message reached the operator's chat."""

    request_id: str
    message_id: int
    callback_data: str


async def deliver_one(
    http: aiohttp.ClientSession, server: Server, fake: FakeBotAPI, text: str
) -> tuple[Delivered, float]:
    """Create a confirmation request with message ``text`` and wait for its sendMessage.

    Returns the request and its delivery latency: the fake's answer - the POST's response.
    """
    body = {
        "session_id": SESSION["session_id"],
        "client_id": SESSION["client_id"],
        "message": text,
        "request_type": "confirmation",
        "timeout_seconds": 600,
    }
    raw = await post(http, f"{server.base_url}/hitl/request", msgspec.json.encode(body))
    created_at = time.monotonic()
    request_id = str(msgspec.json.decode(raw)["request_id"])
    try:
        params = await fake.wait_for_call(
            "sendMessage",
            timeout=DELIVERY_TIMEOUT_SECONDS,
            where=lambda p: p.get("chat_id") == OPERATOR and text in str(p.get("text", "")),
        )
    except AssertionError:
        raise BenchError(
            f"request {request_id}: no message within {DELIVERY_TIMEOUT_SECONDS:g} s"
        ) from None
    call: Call = next(c for c in fake.calls if c.params is params)
    [message_id] = [
        mid for (chat, mid), m in fake.messages.items() if chat == OPERATOR and text in m["text"]
    ]
    markup = fake.messages[OPERATOR, message_id].get("reply_markup")
    if not markup:
        raise BenchError(f"request {request_id}: its message has no buttons")
    data = str(markup["inline_keyboard"][0][0]["callback_data"])
    return Delivered(request_id, message_id, data), call.at - created_at


async def deliver(
    server: Server, fake: FakeBotAPI, count: int, label: str, warmup: int = 0
) -> tuple[Latencies, list[Delivered]]:
    """``warmup`` + ``count`` requests, one at a time, each waited for until delivered."""
    run = Latencies(count)
    delivered: list[Delivered] = []
    tag = secrets.token_hex(4)
    async with client_session(1) as http:
        for index in range(warmup + count):
            text = f"Bench {label} {tag} request {index}"
            try:
                request, latency = await deliver_one(http, server, fake, text)
            except (BenchError, HttpError, aiohttp.ClientError, TimeoutError) as exc:
                run.errors.append(f"{label} {index}: {exc}")
                if len(run.errors) >= MAX_WAKE_ERRORS:
                    break
                continue
            if index >= warmup:
                run.latencies.append(latency)
                delivered.append(request)
    return run, delivered


async def until_recorded(server: Server, request_id: str) -> None:
    """Until the server recorded the sent message, so no delivery write overlaps what follows."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
    async with client_session(1) as http:
        while time.monotonic() < deadline:
            async with http.get(f"{server.base_url}/v1/requests/{request_id}") as response:
                if (await response.json()).get("delivered_at") is not None:
                    return
            await asyncio.sleep(0.02)
    raise BenchError(f"request {request_id}: delivery never recorded")


# --- decision --------------------------------------------------------------------------------


def press_update(fake: FakeBotAPI, request: Delivered) -> bytes:
    """The operator pressing the request's first button, as Telegram would POST it."""
    update = fake.callback_update(
        from_id=OPERATOR,
        chat_id=OPERATOR,
        message_id=request.message_id,
        data=request.callback_data,
    )
    return msgspec.json.encode(update)


async def press_each(
    server: Server,
    fake: FakeBotAPI,
    requests: Sequence[Delivered],
    wake: Wake,
) -> None:
    """Long-poll ``requests``, then press each one's first button, one at a time, into ``wake``.

    Mirrors :func:`bench.hitl.wait_and_answer` and ``answer_each``, the answer being a
    webhook update instead of ``POST /v1/requests/{id}/response``.
    """
    ids = [request.request_id for request in requests]
    kind = long_poll(server.base_url, ids, "long-poll", "long-poll(s)")
    sent = [0]
    trace = aiohttp.TraceConfig()

    async def on_headers_sent(*_: Any) -> None:
        sent[0] += 1

    trace.on_request_headers_sent.append(on_headers_sent)
    waiters_http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=len(ids), limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=POLL_WAIT_SECONDS + DELIVERY_TIMEOUT_SECONDS),
        trace_configs=[trace],
    )
    waiters: dict[str, asyncio.Task[Any]] = {}
    url = f"{server.base_url}/telegram/webhook"
    headers = {**JSON_HEADERS, SECRET_HEADER: SECRET}
    async with waiters_http, client_session(1) as http:
        try:
            await kind.open(waiters_http, sent, waiters)
            await asyncio.sleep(SETTLE_SECONDS)
            early = {rid for rid, task in waiters.items() if task.done()}
            if early:
                wake.errors.append(f"{len(early)} long-poll(s) returned before any press")
            progress(f"{len(waiters) - len(early)} long-polls waiting; pressing one at a time")
            for request in requests:
                if request.request_id in early:
                    continue
                if len(wake.errors) >= MAX_WAKE_ERRORS:
                    wake.errors.append(f"stopped after {wake.woken} presses")
                    return
                body = press_update(fake, request)
                sent_at = time.perf_counter()
                try:
                    async with http.post(url, data=body, headers=headers) as response:
                        raw = await response.read()
                        status = response.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    wake.errors.append(f"press {request.request_id}: {exc!r}")
                    continue
                answered_at = time.perf_counter()
                if status != 200:
                    wake.errors.append(f"press {request.request_id}: HTTP {status}: {raw[:300]!r}")
                    continue
                try:
                    result = await asyncio.wait_for(
                        asyncio.shield(waiters[request.request_id]), WAKE_TIMEOUT_SECONDS
                    )
                except TimeoutError:
                    wake.errors.append(
                        f"long-poll {request.request_id}: not woken within"
                        f" {WAKE_TIMEOUT_SECONDS} s of the press"
                    )
                    continue
                problem = kind.check(result)
                if problem is not None:
                    wake.errors.append(f"long-poll {request.request_id}: {problem}")
                    continue
                wake.latencies.append(result.at - answered_at)
                wake.answer_latencies.append(answered_at - sent_at)
        finally:
            await cancel_all(waiters)


def batches(items: Sequence[Any]) -> list[Sequence[Any]]:
    return [items[start : start + BATCH] for start in range(0, len(items), BATCH)]


async def measure_press(server: Server, fake: FakeBotAPI, requests: list[Delivered]) -> Wake:
    wake = Wake(len(requests))
    for batch in batches(requests):
        await press_each(server, fake, batch, wake)
    progress(f"decision by press: {wake_summary(wake)} (after the webhook's response)")
    return wake


async def measure_api(server: Server, requests: list[Delivered]) -> Wake:
    wake = Wake(len(requests))
    for batch in batches([request.request_id for request in requests]):
        kind = long_poll(server.base_url, batch, "long-poll", "long-poll(s)")
        await wait_and_answer(
            batch,
            kind,
            server.base_url,
            wake,
            lambda n: f"{n} long-polls waiting; answering one at a time by API",
        )
    progress(f"decision by API: {wake_summary(wake)} (after the answer's response)")
    return wake


def sent_to_returned(wake: Wake) -> list[float]:
    """Per decision, seconds from the press (or answer) being sent to the long-poll returning."""
    return [a + b for a, b in zip(wake.latencies, wake.answer_latencies, strict=True)]


# --- running ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """What ``python -m bench telegram`` was asked to do."""

    store: str
    requests: int
    admin_url: str


@dataclass(frozen=True)
class Report:
    settings: Settings
    floor: Latencies
    delivery: Latencies
    press: Wake
    api: Wake


def telegram_env(fake: FakeBotAPI) -> dict[str, str]:
    """``bench hitl``'s server environment, plus Telegram in webhook mode on the fake."""
    env = child_env()
    env.update(
        TELEGRAM_BOT_TOKEN=TEST_TOKEN,
        LOOPGATE_TELEGRAM__API_BASE=fake.base_url,
        LOOPGATE_TELEGRAM__MODE="webhook",
        LOOPGATE_TELEGRAM__WEBHOOK_SECRET=SECRET,
    )
    return env


async def run_server(url: str, workdir: Path, settings: Settings) -> Report:
    """The fake on this loop, Loopgate pointed at it; floor, delivery, then decisions."""
    count = settings.requests
    async with running_fake() as fake:
        progress(f"fake Bot API on {fake.base_url}; starting loopgate ({STARTUP_NOTE})")
        env = telegram_env(fake)
        async with server_process("loopgate", loopgate_argv(url), workdir, env) as server:
            async with client_session(1) as http:
                await post(http, f"{server.base_url}/hitl/register", msgspec.json.encode(SESSION))
            floor = await measure_floor(fake, count)
            delivery, to_press = await deliver(server, fake, count, "delivery", warmup=WARMUP)
            progress(f"delivery (POST /hitl/request returned -> sendMessage answered):"
                     f" {summary(delivery)}")  # fmt: skip
            extra, to_answer = await deliver(server, fake, count, "api")
            if extra.errors:
                delivery.errors.extend(extra.errors)
            for last in (to_press[-1:], to_answer[-1:]):
                for request in last:
                    await until_recorded(server, request.request_id)
            if not to_press or not to_answer:
                raise BenchError("no request was delivered; nothing to decide")
            progress(f"created and delivered {len(to_answer)} more requests for the API floor")
            press = await measure_press(server, fake, to_press)
            api = await measure_api(server, to_answer)
    return Report(settings, floor, delivery, press, api)


async def run(settings: Settings) -> Report:
    """One benchmark run in a fresh scratch database and a temporary working directory."""
    cancel_on_sigterm()
    scratch = (
        postgres_scratch(settings.admin_url, (1,))
        if settings.store == "postgres"
        else sqlite_scratch()
    )
    with tempfile.TemporaryDirectory(prefix="loopgate_bench_telegram_") as directory:
        async with scratch as url:
            return await run_server(url, Path(directory), settings)


# --- output ----------------------------------------------------------------------------------


def _ratio(value: float, floor: float) -> str:
    return f"{value / floor:.1f}x" if floor > 0 and not math.isnan(value / floor) else "-"


def format_report(report: Report) -> str:
    """The results as plain-text tables."""
    settings, floor, delivery = report.settings, report.floor, report.delivery
    header = ("run", "measured", "p50 ms", "p99 ms", "max ms", "p50 / floor", "p99 / floor",
              "errors")  # fmt: skip

    def row(
        name: str, values: Sequence[float], count: int, errors: int, ref: Any
    ) -> tuple[str, ...]:
        p50, p99 = quantile(values, 0.5), quantile(values, 0.99)
        return (
            name,
            f"{len(values)} of {count}",
            _ms(p50),
            _ms(p99),
            _ms(quantile(values, 1.0)),
            "-" if ref is None else _ratio(p50, quantile(ref, 0.5)),
            "-" if ref is None else _ratio(p99, quantile(ref, 0.99)),
            str(errors),
        )

    floor_values = [max(0.0, v) for v in floor.latencies]
    delivery_values = [max(0.0, v) for v in delivery.latencies]
    delivery_rows = [
        row("floor: aiogram send_message", floor_values, floor.count, len(floor.errors), None),
        row("loopgate delivery", delivery_values, delivery.count, len(delivery.errors),
            floor_values),
    ]  # fmt: skip
    press, api = report.press, report.api
    api_values, press_values = sent_to_returned(api), sent_to_returned(press)
    decision_rows = [
        row("floor: POST /v1/requests/{id}/response", api_values, api.waiters, len(api.errors),
            None),
        row("button press: POST /telegram/webhook", press_values, press.waiters,
            len(press.errors), api_values),
    ]  # fmt: skip
    all_delivered = delivery.done == delivery.count and not delivery.errors
    p99_ms = delivery.percentile(0.99) * 1e3
    max_ms = delivery.percentile(1.0) * 1e3
    lines = [
        f"store: {settings.store}; server: python -m loopgate serve (subprocess, log level"
        " warning) in Telegram webhook mode; Bot API: the local fake (tests/telegram), on the"
        " benchmark's event loop",
        "",
        f"delivery: {delivery.count} confirmation requests one at a time (after {WARMUP}"
        " warm-up), each waited for; POST /hitl/request returned -> the fake answered its"
        " sendMessage (time.monotonic, this process); floor = a bare aiogram Bot.send_message"
        " round trip to the same fake",
        *table_lines(header, delivery_rows),
        f'"within a second": p99 {p99_ms:.2f} ms  (target < {DELIVERY_P99_TARGET_MS:g} ms:'
        f" {_verdict(all_delivered and p99_ms < DELIVERY_P99_TARGET_MS)})",
        f'"within 5 s": max {max_ms:.2f} ms  (target < {DELIVERY_MAX_TARGET_MS:g} ms, every'
        f" request: {_verdict(all_delivered and max_ms < DELIVERY_MAX_TARGET_MS)})",
        f"sent first (message answered before the POST returned, counted as 0): {delivery.first}",
        "",
        f"decision: {press.waiters} delivered requests long-polled (GET /hitl/poll?wait="
        f"{POLL_WAIT_SECONDS}, {BATCH} at a time), decided one at a time; press or answer sent"
        " -> long-poll returned (perf_counter); press = the operator's callback_query on the"
        f' first button ("{ANSWER_OPTION}"); floor = the API answer {{"option":'
        f' "{ANSWER_OPTION}"}} on other requests delivered the same way',
        *table_lines(header, decision_rows),
        f"after the response: press p50 {_ms(press.percentile(0.5))} ms, p99"
        f" {_ms(press.percentile(0.99))} ms (long-poll returned - webhook response read;"
        f" {press.poll_first} first); API p50 {_ms(api.percentile(0.5))} ms, p99"
        f" {_ms(api.percentile(0.99))} ms ({api.poll_first} first)",
    ]
    return "\n".join(lines)


def errors_of(report: Report) -> list[str]:
    return [
        *(f"floor: {message}" for message in report.floor.errors),
        *(f"delivery: {message}" for message in report.delivery.errors),
        *(f"press: {message}" for message in report.press.errors),
        *(f"api: {message}" for message in report.api.errors),
    ]


# --- command line ----------------------------------------------------------------------------


def add_subcommand(subcommands: Any) -> None:
    """Register ``telegram`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "telegram",
        help="Telegram delivery and button-press decision latency vs aiogram and API floors",
        description=(
            "Against loopgate serve in Telegram webhook mode with a local fake Bot API:"
            " request created -> message sent (vs a bare aiogram send_message), and button"
            " press -> long-poll returned (vs the API answer)."
        ),
        epilog=(
            "One server subprocess on a free loopback port and a fresh scratch database;"
            " requests are created and decided one at a time. About 30 s with the defaults."
        ),
    )
    parser.add_argument(
        "--store", required=True, choices=("sqlite", "postgres"), help="the backend to measure"
    )
    parser.add_argument(
        "--requests", type=bounded_int(1, MAX_REQUESTS), default=DEFAULT_REQUESTS, metavar="N",
        help="measured requests (and floor calls) per run (default: %(default)s)",
    )  # fmt: skip
    add_database_url(parser, postgres_only=True)
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    """Run the benchmark; the tables go to stdout. Exit status 1 if anything failed."""
    check_store_options(args)
    settings = Settings(store=args.store, requests=args.requests, admin_url=admin_url(args))
    report = run_benchmark("telegram", run(settings))
    if report is None:
        return INTERRUPTED
    return finish(format_report(report), errors_of(report))
