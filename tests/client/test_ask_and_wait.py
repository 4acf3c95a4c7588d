"""``loopgate.client`` against a live server: ask, submit, wait and cancel, on both transports.

The server is the whole app on each store. ``wait`` normally listens on the
request's SSE stream; the long-poll cases put a proxy in front that refuses
the stream, as a buffering proxy would, so the client must fall back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loopgate.channels.webhooks.signing import SIGNATURE_HEADER, InvalidSignature, sign
from loopgate.client import (
    Decision,
    Loopgate,
    LoopgateClient,
    NotApproved,
    RequestNotFound,
    ServerUnreachable,
    WaitTimedOut,
    require_approval,
    verify_webhook,
)
from loopgate.client.connection import DEFAULT_SESSION
from loopgate.config import Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

ServerFactory = Callable[..., Awaitable[TestServer]]
SETTLE = 5.0


async def refuse_streams(server: TestServer, aiohttp_server: ServerFactory) -> str:
    """A proxy to ``server`` that answers every SSE stream with 502."""
    http = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/events"):
            return web.Response(status=502, text="streams are buffered here")
        async with http.request(
            request.method,
            server.make_url(request.path_qs),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            data=await request.read(),
        ) as upstream:
            return web.Response(
                status=upstream.status,
                body=await upstream.read(),
                content_type=upstream.content_type,
            )

    proxy = web.Application()
    proxy.router.add_route("*", "/{tail:.*}", forward)

    async def close_http(_app: web.Application) -> None:
        await http.close()

    proxy.on_cleanup.append(close_http)
    return str((await aiohttp_server(proxy)).make_url(""))


@pytest.fixture
async def server(store: EventStore, config: Config, aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(create_app(config, store=store))


@pytest.fixture(params=["sse", "long-poll"])
async def base_url(
    request: pytest.FixtureRequest, server: TestServer, aiohttp_server: ServerFactory
) -> str:
    if request.param == "sse":
        return str(server.make_url(""))
    return await refuse_streams(server, aiohttp_server)


@pytest.fixture
async def operator(server: TestServer) -> AsyncIterator[LoopgateClient]:
    """Answers requests directly on the server, as a human on the console would."""
    async with LoopgateClient(str(server.make_url(""))) as client:
        yield client


async def pending_one(operator: LoopgateClient) -> str:
    deadline = time.monotonic() + SETTLE
    while not (pending := await operator.list_requests(statuses=("pending",))):
        assert time.monotonic() < deadline, "no request arrived"
        await asyncio.sleep(0.02)
    (request,) = pending
    request_id: str = request["request_id"]
    return request_id


async def answer_soon(operator: LoopgateClient, option: str) -> str:
    request_id = await pending_one(operator)
    await operator.answer(request_id, option=option)
    return request_id


@pytest.mark.parametrize(("option", "approved"), [("Deploy", True), ("Hold", False)])
async def test_ask_returns_the_answer(
    base_url: str, operator: LoopgateClient, option: str, approved: bool
) -> None:
    async with LoopgateClient(base_url) as gate:
        asking = asyncio.create_task(
            gate.ask(
                "Deploy v2.1?",
                options=["Deploy", "Hold"],
                metadata={"version": "2.1"},
                session_id="ci",
            )
        )
        request_id = await answer_soon(operator, option)
        decision = await asyncio.wait_for(asking, SETTLE)
    assert decision == Decision(
        request_id=request_id,
        status="answered",
        approved=approved,
        response=option,
        outcome="approved" if approved else "rejected",
        decided_by=decision.decided_by,
        decided_at=decision.decided_at,
    )
    assert decision.final and decision.decided_by and decision.decided_by["kind"] == "human"
    seen = await operator.get_request(request_id)
    assert (seen["session_id"], seen["metadata"]) == ("ci", {"version": "2.1"})


async def test_wait_times_out_then_cancel_decides(base_url: str) -> None:
    async with LoopgateClient(base_url) as gate:
        request_id = await gate.submit("Rotate the keys?", options=["Rotate", "Hold"])
        with pytest.raises(WaitTimedOut) as timed_out:
            await gate.wait(request_id, timeout=0.3)
        assert timed_out.value.decision.status == "pending"
        assert not timed_out.value.decision.final
        cancelled = await gate.cancel(request_id, "not today")
        assert (cancelled.status, cancelled.approved) == ("cancelled", False)
        assert await gate.wait(request_id, timeout=5) == cancelled
        session = await gate.get_session(DEFAULT_SESSION)
    assert session["active"] is True  # registered on first use


async def test_an_unanswered_ask_ends_with_the_server_side_expiry(base_url: str) -> None:
    async with LoopgateClient(base_url) as gate:
        decision = await asyncio.wait_for(gate.ask("Anyone?", options=["Yes"], timeout=1), 15)
    assert (decision.status, decision.approved, decision.outcome) == ("expired", False, "expired")


async def test_errors_are_typed(base_url: str) -> None:
    async with LoopgateClient(base_url) as gate:
        with pytest.raises(RequestNotFound):
            await gate.wait("no-such-request", timeout=1)
        with pytest.raises(RequestNotFound):
            await gate.cancel("no-such-request")
    async with LoopgateClient("http://127.0.0.1:9") as nowhere:
        with pytest.raises(ServerUnreachable):
            await nowhere.submit("Hello?")


async def test_the_blocking_client_asks_and_cancels(
    base_url: str, operator: LoopgateClient
) -> None:
    with Loopgate(base_url) as gate:
        asking = asyncio.create_task(asyncio.to_thread(gate.ask, "Ship?", options=["Ship", "Hold"]))
        await answer_soon(operator, "Ship")
        decision = await asyncio.wait_for(asking, SETTLE)
        assert (decision.status, decision.approved, decision.response) == ("answered", True, "Ship")
        request_id = await asyncio.to_thread(gate.submit, "Again?", options=["Yes", "No"])
        cancelled = await asyncio.to_thread(gate.cancel, request_id)
        assert cancelled.status == "cancelled"
        assert await asyncio.to_thread(gate.wait, request_id, 5) == cancelled


async def test_require_approval_runs_the_function_only_when_approved(
    base_url: str, operator: LoopgateClient
) -> None:
    deployed: list[str] = []
    async with LoopgateClient(base_url) as gate:

        @require_approval(message=lambda env: f"Deploy to {env}?", client=gate)
        async def deploy(env: str) -> str:
            deployed.append(env)
            return f"deployed {env}"

        running = asyncio.create_task(deploy("staging"))
        request_id = await answer_soon(operator, "Approve")
        assert await asyncio.wait_for(running, SETTLE) == "deployed staging"
        assert (await operator.get_request(request_id))["message"] == "Deploy to staging?"

        running = asyncio.create_task(deploy("production"))
        await answer_soon(operator, "Reject")
        with pytest.raises(NotApproved) as refused:
            await asyncio.wait_for(running, SETTLE)
    assert deployed == ["staging"]
    assert (refused.value.decision.outcome, refused.value.decision.response) == (
        "rejected",
        "Reject",
    )


async def test_require_approval_on_a_plain_function(
    base_url: str, operator: LoopgateClient
) -> None:
    with Loopgate(base_url) as gate:

        @require_approval(message="Drop the table?", options=["Drop", "Cancel"], client=gate)
        def drop() -> str:
            return "dropped"

        running = asyncio.create_task(asyncio.to_thread(drop))
        await answer_soon(operator, "Cancel")
        with pytest.raises(NotApproved):
            await asyncio.wait_for(running, SETTLE)


def test_verify_webhook_returns_the_signed_json() -> None:
    body = b'{"request_id": "r1", "approved": true}'
    headers = {SIGNATURE_HEADER: sign(body, "whsec_x", int(time.time()))}
    event: dict[str, Any] = verify_webhook(body, headers, "whsec_x")
    assert event == {"request_id": "r1", "approved": True}
    with pytest.raises(InvalidSignature):
        verify_webhook(body.replace(b"true", b"false"), headers, "whsec_x")
