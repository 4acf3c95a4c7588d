"""``python -m bench limits``: one key floods request creation; does everyone else notice?

``python -m loopgate serve`` runs in its own process with
``limits.create_rate = --rate`` and ``limits.create_burst = --burst``. Two
users each make an API key; the "calm" key registers a session and measures
its own creations and reads, one at a time:

1. **Baseline:** the calm key alone, for ``--seconds`` seconds.
   It creates and reads 20 times a second, well inside its own limit.
2. **Flood:** the same, while the "busy" key fires ``--flood`` creations spread
   evenly over one second (all at once with ``--flood-seconds 0``).

The report counts the busy key's 200s and 429s (and checks every 429 carries
``Retry-After``), and gives the calm key's latency in both runs, with the
flood's as a ratio of the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from bench.append import postgres_scratch, sqlite_scratch, table_lines
from bench.cli import (
    INTERRUPTED,
    BenchError,
    add_database_url,
    admin_url,
    bounded_int,
    check_store_options,
    finish,
    positive_seconds,
    progress,
    run_benchmark,
)
from bench.hitl import (
    JSON_HEADERS,
    child_env,
    client_session,
    loopgate_argv,
    quantile,
    server_process,
)

PASSWORD = "bench passphrase, long enough"
CALM_PER_SECOND = 20  # the calm key's pace: well inside any limit worth setting
MESSAGE = {"client_id": "bench", "message": "Deploy v2.1 to production?", "options": ["Yes", "No"]}


@dataclass
class Settings:
    store: str
    rate: float
    burst: int
    flood: int
    flood_seconds: float
    seconds: float
    admin_url: str


@dataclass
class Flood:
    accepted: int = 0
    refused: int = 0
    without_retry_after: int = 0
    other: int = 0


@dataclass
class Report:
    settings: Settings
    flood: Flood
    calm_alone: list[float]
    calm_flooded: list[float]


async def key_for(http: aiohttp.ClientSession, base: str, name: str) -> dict[str, str]:
    """A new user's API key header (register, log in, create the key)."""
    user = {"username": f"{name}_{uuid.uuid4().hex[:6]}", "password": PASSWORD}
    for path in ("/api/auth/register", "/api/auth/login"):
        async with http.post(base + path, json=user) as response:
            if response.status not in (200, 201):
                raise BenchError(f"{path}: HTTP {response.status}: {await response.text()}")
            token = (await response.json()).get("token")
    bearer = {"Authorization": f"Bearer {token}"}
    async with http.post(base + "/api/user/apikeys", json={}, headers=bearer) as response:
        if response.status != 201:
            raise BenchError(f"key: HTTP {response.status}: {await response.text()}")
        return {"X-API-Key": (await response.json())["raw_key"], **JSON_HEADERS}


async def session_for(http: aiohttp.ClientSession, base: str, key: dict[str, str]) -> str:
    session = f"bench-{uuid.uuid4().hex[:6]}"
    body = {"session_id": session, "client_id": "bench"}
    async with http.post(base + "/v1/sessions", json=body, headers=key) as response:
        if response.status != 201:
            raise BenchError(f"session: HTTP {response.status}: {await response.text()}")
    return session


async def calm_calls(
    http: aiohttp.ClientSession, base: str, key: dict[str, str], session: str, seconds: float
) -> list[float]:
    """Create, then read back, ``CALM_PER_SECOND`` times a second for ``seconds``: latencies.

    Paced, so the calm key stays well inside its own limit.
    """
    body = msgspec.json.encode({**MESSAGE, "session_id": session})
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        await asyncio.sleep(1 / CALM_PER_SECOND)
        started = time.perf_counter()
        async with http.post(base + "/hitl/request", data=body, headers=key) as response:
            if response.status != 200:
                raise BenchError(f"calm create: HTTP {response.status}: {await response.text()}")
            request_id = (await response.json())["request_id"]
        latencies.append(time.perf_counter() - started)
        started = time.perf_counter()
        async with http.get(f"{base}/hitl/poll?request_id={request_id}", headers=key) as response:
            if response.status != 200:
                raise BenchError(f"calm poll: HTTP {response.status}")
            await response.read()
        latencies.append(time.perf_counter() - started)
    return latencies


async def flood(
    http: aiohttp.ClientSession, base: str, key: dict[str, str], session: str, settings: Settings
) -> Flood:
    body = msgspec.json.encode({**MESSAGE, "session_id": session})
    result = Flood()

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        async with http.post(base + "/hitl/request", data=body, headers=key) as response:
            await response.read()
            if response.status == 200:
                result.accepted += 1
            elif response.status == 429:
                result.refused += 1
                result.without_retry_after += "Retry-After" not in response.headers
            else:
                result.other += 1

    step = settings.flood_seconds / settings.flood
    await asyncio.gather(*(one(i * step) for i in range(settings.flood)))
    return result


async def run(settings: Settings) -> Report:
    scratch = (
        postgres_scratch(settings.admin_url, (2,))
        if settings.store == "postgres"
        else sqlite_scratch()
    )
    env = {
        **child_env(),
        "LOOPGATE_LIMITS__CREATE_RATE": str(settings.rate),
        "LOOPGATE_LIMITS__CREATE_BURST": str(settings.burst),
    }
    with tempfile.TemporaryDirectory(prefix="loopgate_bench_limits_") as directory:
        async with (
            scratch as url,
            server_process("loopgate", loopgate_argv(url), Path(directory), env) as server,
        ):
            base = server.base_url
            async with client_session(settings.flood + 2) as http:
                busy, calm = await key_for(http, base, "busy"), await key_for(http, base, "calm")
                busy_session = await session_for(http, base, busy)
                calm_session = await session_for(http, base, calm)
                progress(f"baseline: the calm key alone for {settings.seconds} s")
                alone = await calm_calls(http, base, calm, calm_session, settings.seconds)
                progress(f"flood: {settings.flood} creations from one key, calm key alongside")
                flooded, result = await asyncio.gather(
                    calm_calls(http, base, calm, calm_session, settings.seconds),
                    flood(http, base, busy, busy_session, settings),
                )
    return Report(settings, result, alone, flooded)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def format_report(report: Report) -> str:
    s, f = report.settings, report.flood
    lines = [
        f"store {s.store}; limits.create_rate = {s.rate:g}, limits.create_burst = {s.burst}; "
        f"{s.flood} creations from one key over {s.flood_seconds:g} s",
        f"busy key: {f.accepted} accepted, {f.refused} refused with 429 "
        f"({f.without_retry_after} without Retry-After), {f.other} other",
        "",
    ]
    rows = []
    for name, values in (
        ("calm, alone", report.calm_alone),
        ("calm, during flood", report.calm_flooded),
    ):
        rows.append(
            (name, str(len(values)), _ms(quantile(values, 0.5)), _ms(quantile(values, 0.99)))
        )
    lines += table_lines(("other key's calls", "calls", "p50 ms", "p99 ms"), rows)
    ratio = quantile(report.calm_flooded, 0.5) / quantile(report.calm_alone, 0.5)
    lines.append(f"p50 during the flood: {ratio:.2f}x the baseline's")
    return "\n".join(lines)


def errors_of(report: Report) -> list[str]:
    f = report.flood
    errors = []
    if f.other:
        errors.append(f"{f.other} flood calls got neither 200 nor 429")
    if f.without_retry_after:
        errors.append(f"{f.without_retry_after} 429s without Retry-After")
    if not report.calm_flooded:
        errors.append("the calm key made no call during the flood")
    return errors


def add_subcommand(subcommands: Any) -> None:
    """Register ``limits`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "limits",
        help="one key floods request creation: 200s vs 429s, and another key's latency",
        description=(
            "A live loopgate serve with limits.create_rate/burst set; one API key fires"
            " --flood creations over --flood-seconds while another key creates and reads."
        ),
    )
    parser.add_argument("--store", required=True, choices=("sqlite", "postgres"))
    parser.add_argument(
        "--rate", type=float, default=50.0, help="limits.create_rate (default: %(default)s)"
    )
    parser.add_argument(
        "--burst",
        type=bounded_int(1, 100_000),
        default=50,
        help="limits.create_burst (default: %(default)s)",
    )
    parser.add_argument(
        "--flood",
        type=bounded_int(1, 5000),
        default=200,
        help="creations from the busy key (default: %(default)s)",
    )
    parser.add_argument(
        "--flood-seconds", type=float, default=1.0,
        help="spread the flood over this long; 0 sends it all at once (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--seconds", type=positive_seconds, default=2.0,
        help="how long the calm key measures, alone and during the flood (default: %(default)s)",
    )  # fmt: skip
    add_database_url(parser, postgres_only=True)
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    check_store_options(args)
    settings = Settings(
        store=args.store,
        rate=args.rate,
        burst=args.burst,
        flood=args.flood,
        flood_seconds=max(0.0, args.flood_seconds),
        seconds=args.seconds,
        admin_url=admin_url(args),
    )
    report = run_benchmark("limits", run(settings))
    if report is None:
        return INTERRUPTED
    return finish(format_report(report), errors_of(report))
