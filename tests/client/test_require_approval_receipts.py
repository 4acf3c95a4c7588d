"""``@require_approval`` asks about the call itself and redeems its receipt before running it.

Against a live server (the receipts are minted and redeemed for real); the
test approves over REST as a console operator would, editing the args when
the request allows it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loopgate.cli import main
from loopgate.client import (
    LoopgateClient,
    ReceiptRefused,
    RequestConflict,
    require_approval,
    verify_receipt,
)
from loopgate.config import Config
from loopgate.domain.action import fingerprint
from loopgate.events import Action
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

ServerFactory = Callable[..., Awaitable[TestServer]]
SETTLE = 5.0


@pytest.fixture(autouse=True)
def keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` in-process must not point the suite's logging at this test's captured streams."""
    monkeypatch.setattr("loopgate.cli.configure_logging", lambda *args, **kwargs: None)


@pytest.fixture
async def server(store: EventStore, config: Config, aiohttp_server: ServerFactory) -> TestServer:
    return await aiohttp_server(create_app(config, store=store))


@pytest.fixture
async def operator(server: TestServer) -> AsyncIterator[LoopgateClient]:
    async with LoopgateClient(str(server.make_url(""))) as client:
        yield client


async def pending(operator: LoopgateClient) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE
    while not (found := await operator.list_requests(statuses=("pending",))):
        assert time.monotonic() < deadline, "no request arrived"
        await asyncio.sleep(0.02)
    (request,) = found
    return await operator.get_request(request["request_id"])


async def test_an_edited_call_runs_once_with_the_edited_args(
    server: TestServer, operator: LoopgateClient, tmp_path: Path
) -> None:
    runs: list[tuple[str, int]] = []
    async with LoopgateClient(str(server.make_url(""))) as gate:

        @require_approval(
            message=lambda env, replicas=1: f"Deploy {env}?", client=gate, editable=True
        )
        async def deploy(env: str, replicas: int = 1) -> str:
            runs.append((env, replicas))
            return f"{env}x{replicas}"

        running = asyncio.create_task(deploy("prod"))
        asked = await pending(operator)
        tool = deploy.__qualname__
        assert asked["action"] == {"tool": tool, "args": {"env": "prod", "replicas": 1}}
        assert asked["editable"] is True
        assert asked["fingerprint"] == fingerprint(Action(tool=tool, args=asked["action"]["args"]))
        await operator.answer(
            asked["request_id"], option="Approve", args={"env": "staging", "replicas": 2}
        )
        assert await asyncio.wait_for(running, SETTLE) == "stagingx2"
    assert runs == [("staging", 2)]

    decided = await operator.get_request(asked["request_id"])
    edited = {"tool": tool, "args": {"env": "staging", "replicas": 2}}
    assert (decided["decided_action"], decided["edited"]) == (edited, True)
    # The receipt binds the edited call, and the decorator used it up.
    claims = verify_receipt(decided["receipt"], edited, await operator.jwks())
    assert claims["sub"] == asked["request_id"]
    # The CLI agrees, with the server's JWKS fetched from its URL.
    (tmp_path / "action.json").write_text(json.dumps(edited))
    argv = ["receipt", "verify", decided["receipt"], "--action", str(tmp_path / "action.json")]
    argv += ["--jwks", str(server.make_url("/.well-known/jwks.json"))]
    assert await asyncio.to_thread(main, argv) == 0
    (tmp_path / "action.json").write_text(json.dumps(asked["action"]))
    assert await asyncio.to_thread(main, argv) == 1
    with pytest.raises(RequestConflict) as again:
        await operator.redeem_receipt(decided["receipt"], edited)
    assert (again.value.status, again.value.code) == (409, "receipt_already_redeemed")


async def test_a_plain_method_under_a_tool_name_runs_with_the_approved_args(
    server: TestServer, operator: LoopgateClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Tables:
        def __init__(self) -> None:
            self.dropped: list[str] = []

        @require_approval(message="Drop it?", tool="db.drop", editable=True)
        def drop(self, name: str, *, cascade: bool = False) -> str:
            self.dropped.append(name)
            return f"dropped {name}{' cascade' if cascade else ''}"

    # With no client given, the decorator makes a blocking one from LOOPGATE_URL.
    monkeypatch.setenv("LOOPGATE_URL", str(server.make_url("")))
    tables = Tables()
    running = asyncio.create_task(asyncio.to_thread(tables.drop, "users", cascade=True))
    asked = await pending(operator)
    # The instance is who runs the call, not an argument of it.
    assert asked["action"] == {"tool": "db.drop", "args": {"name": "users", "cascade": True}}
    await operator.answer(asked["request_id"], option="Approve")
    assert await asyncio.wait_for(running, SETTLE) == "dropped users cascade"
    decided = await operator.get_request(asked["request_id"])
    with pytest.raises(RequestConflict):
        await operator.redeem_receipt(decided["receipt"], asked["action"])

    # An approver's edit reaches the method, keyword-only arguments included.
    running = asyncio.create_task(asyncio.to_thread(tables.drop, "users", cascade=True))
    asked = await pending(operator)
    edit = {"name": "users_old", "cascade": False}
    await operator.answer(asked["request_id"], option="Approve", args=edit)
    assert await asyncio.wait_for(running, SETTLE) == "dropped users_old"
    assert tables.dropped == ["users", "users_old"]


async def test_an_edit_is_refused_unless_the_request_is_editable(
    server: TestServer, operator: LoopgateClient
) -> None:
    async with LoopgateClient(str(server.make_url(""))) as gate:

        @require_approval(message="Pay?", client=gate)
        async def pay(amount: int) -> int:
            return amount

        running = asyncio.create_task(pay(10))
        asked = await pending(operator)
        with pytest.raises(Exception) as refused:
            await operator.answer(asked["request_id"], option="Approve", args={"amount": 1000})
        assert getattr(refused.value, "code", None) == "not_editable"
        await operator.answer(asked["request_id"], option="Approve")
        assert await asyncio.wait_for(running, SETTLE) == 10


async def test_a_refused_redemption_stops_the_call(
    server: TestServer, operator: LoopgateClient, aiohttp_server: ServerFactory
) -> None:
    """Through a proxy whose redeem route says the receipt was used already."""
    http = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.StreamResponse:
        if request.path == "/v1/receipts/redeem":
            error = {"code": "receipt_already_redeemed", "message": "used at 12:00"}
            return web.json_response({"error": error}, status=409)
        if request.path.endswith("/events"):  # a buffering proxy: the client long-polls
            return web.Response(status=502, text="no streams here")
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
    proxied = await aiohttp_server(proxy)
    runs: list[str] = []
    try:
        async with LoopgateClient(str(proxied.make_url(""))) as gate:

            @require_approval(message="Rotate?", client=gate)
            async def rotate(key: str) -> None:
                runs.append(key)

            running = asyncio.create_task(rotate("k1"))
            asked = await pending(operator)
            await operator.answer(asked["request_id"], option="Approve")
            with pytest.raises(ReceiptRefused) as refused:
                await asyncio.wait_for(running, SETTLE)
    finally:
        await http.close()
    assert runs == []
    assert (refused.value.status, refused.value.code) == (409, "receipt_already_redeemed")
    assert refused.value.decision.approved and refused.value.decision.receipt


async def test_arguments_that_are_not_json_are_refused_before_asking(
    server: TestServer, operator: LoopgateClient
) -> None:
    async with LoopgateClient(str(server.make_url(""))) as gate:

        @require_approval(message="Send?", client=gate)
        async def send(payload: object) -> None:
            raise AssertionError("must not run")

        with pytest.raises(TypeError, match="JSON-encodable"):
            await send(object())
    assert await operator.list_requests() == []
