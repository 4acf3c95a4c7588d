"""``python -m bench actions``: what binding approvals to the action costs, per operation.

In one process, on a scratch database, with the command handlers themselves
(no HTTP), each step is timed over ``--count`` operations one after another:

1. **create, no action** (the baseline): ``Requests.create_request`` as agents
   have called it so far;
2. **create, with an action**: the same, with an action: its RFC 8785
   fingerprint, and the lookup of a standing grant of the session;
3. **create, approved by a grant**: the grant matches, so the request is
   decided in its creation's append (timed with a read of it, checking that);
4. **read** (the baseline of a read): ``Requests.get_request`` of an approved request;
5. **mint**: signing its receipt (Ed25519 over the claims), as every read of a
   decision does;
6. **redeem**: verify, check the action, append ``ReceiptRedeemed``.

Each figure is the median per operation, with the ratio to its baseline.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bench.append import postgres_scratch, sqlite_scratch, table_lines
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
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.config import ReceiptsConfig
from loopgate.domain.request import GrantAsk
from loopgate.domain.teams import ANY_PRINCIPAL
from loopgate.events import Action
from loopgate.hub import Hub
from loopgate.receipts import Receipts
from loopgate.store import open_store

ANY_PRINCIPALS = frozenset({ANY_PRINCIPAL})
# The open loopback mode's caller: an owner who may answer whatever is asked.
ACTOR = Actor(
    id="bench", tenant="local", answers_as="bench", role="owner", principals=ANY_PRINCIPALS
)
SESSION = "bench-actions"
MESSAGE = "Deploy v2.1 to production?"


@dataclass
class Step:
    name: str
    seconds: list[float]
    baseline: str | None = None

    @property
    def median_us(self) -> float:
        return statistics.median(self.seconds) * 1e6


async def timed(count: int, operation: Callable[[int], Awaitable[Any]]) -> list[float]:
    took = []
    for i in range(count):
        started = time.perf_counter()
        await operation(i)
        took.append(time.perf_counter() - started)
    return took


def action(i: int) -> Action:
    return Action(tool="wire_transfer", args={"amount": 1000 + i, "to": "ACME", "memo": "bench"})


async def measure(url: str, count: int) -> list[Step]:
    store = await open_store(url)
    hub = Hub(store)
    await hub.start()
    receipts = Receipts(store, lambda: b"k" * 32, ReceiptsConfig(), hub=hub)
    try:
        requests = Requests(store, hub, Sessions(store))
        await requests.sessions.register_session(SESSION, "bench", None, ACTOR)

        async def create(i: int, with_action: Action | None = None, **fields: Any) -> str:
            view, _ = await requests.create_request(
                session_id=SESSION,
                client_id="bench",
                message=MESSAGE,
                request_type="confirmation",
                action=with_action,
                actor=ACTOR,
                **fields,
            )
            return view.request_id

        progress(f"creating {count} requests without an action, then {count} with one")
        plain = await timed(count, create)
        created: list[str] = []

        async def create_with_action(i: int) -> None:
            created.append(await create(i, action(i), grantable=True))

        with_action = await timed(count, create_with_action)
        progress("approving them, the first one with a grant of its tool")
        for i, request_id in enumerate(created):
            grant = GrantAsk(seconds=3600, scope="tool") if i == 0 else None
            await requests.answer(
                request_id, option="Approve", channel="api", actor=ACTOR, grant=grant
            )

        async def create_granted(i: int) -> None:
            request_id = await create(i, action(count + i))
            view = await requests.get_request(request_id, ACTOR)
            if view.grant is None:  # the step measures nothing unless the grant applied
                raise BenchError(f"request {request_id} was not approved by the grant")

        granted = await timed(count, create_granted)
        views = [await requests.get_request(request_id, ACTOR) for request_id in created]
        read = await timed(count, lambda i: requests.get_request(created[i], ACTOR))
        await receipts.mint(views[0])  # makes the first signing key: not what is measured
        tokens: list[str] = []

        async def mint(i: int) -> None:
            token = await receipts.mint(views[i])
            assert token is not None
            tokens.append(token)

        minted = await timed(count, mint)
        progress(f"redeeming {count} receipts")
        redeemed = await timed(count, lambda i: receipts.redeem(tokens[i], action(i), ACTOR))
    finally:
        receipts.close()
        await hub.stop()
        await store.close()
    return [
        Step("create, no action", plain),
        Step("create, with an action", with_action, "create, no action"),
        Step("create, approved by a grant", granted, "create, no action"),
        Step("read an approved request", read),
        Step("mint its receipt", minted, "read an approved request"),
        Step("redeem a receipt", redeemed, "create, no action"),
    ]


def report(store: str, count: int, steps: list[Step]) -> str:
    by_name = {step.name: step for step in steps}
    rows = [
        [
            step.name,
            f"{step.median_us:,.0f}",
            f"{statistics.quantiles(step.seconds, n=100)[98] * 1e6:,.0f}",
            f"{step.median_us / by_name[step.baseline].median_us:.2f}x {step.baseline}"
            if step.baseline
            else "(baseline)",
        ]
        for step in steps
    ]
    header = f"actions on {store}: {count} operations a step, one at a time, in process"
    lines = table_lines(("step", "median us", "p99 us", "vs"), rows)
    return "\n".join([header, "", *lines])


async def run(store: str, count: int, admin: str) -> str:
    if store == "postgres":
        async with postgres_scratch(admin, [1]) as url:
            return report(store, count, await measure(url, count))
    async with sqlite_scratch() as url:
        return report(store, count, await measure(url, count))


def add_subcommand(subcommands: Any) -> None:
    """Register ``actions`` on the ``python -m bench`` parser."""
    parser = subcommands.add_parser(
        "actions",
        help="the cost of actions: fingerprint, grant lookup, receipt mint and redeem",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--store", required=True, choices=("sqlite", "postgres"), help="the backend to measure"
    )
    parser.add_argument(
        "--count",
        type=bounded_int(10, 100_000),
        default=500,
        help="operations a step (default: %(default)s)",
    )
    add_database_url(parser, postgres_only=True)
    parser.set_defaults(run=main)


def main(args: argparse.Namespace) -> int:
    check_store_options(args)
    results = run_benchmark("actions", run(args.store, args.count, admin_url(args)))
    if results is None:
        return INTERRUPTED
    return finish(results, [])
