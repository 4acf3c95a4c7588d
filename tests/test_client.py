"""``LoopgateClient`` against a live server: the /v1 round trip and its errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loopgate.client import LoopgateClient, LoopgateClientError
from loopgate.config import Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

ServerFactory = Callable[..., Awaitable[TestServer]]


async def test_ask_wait_answer_and_list(
    store: EventStore, config: Config, aiohttp_server: ServerFactory
) -> None:
    server = await aiohttp_server(create_app(config, store=store))
    async with LoopgateClient(str(server.make_url("/"))) as gate:
        session = await gate.register_session("s1", "bot", telegram_id=42)
        assert (session["session_id"], session["telegram_id"]) == ("s1", 42)
        made = await gate.create_request(
            {"session_id": "s1", "client_id": "bot", "message": "Go?", "options": ["Go", "Stop"]}
        )
        assert [r["request_id"] for r in await gate.list_requests(statuses=("pending",))] == [
            made["request_id"]
        ]
        unanswered = await gate.get_request(made["request_id"], wait_seconds=0.2)
        assert unanswered["completed"] is False
        await gate.answer(made["request_id"], option="Stop")
        decided = await gate.get_request(made["request_id"], wait_seconds=5)
        assert (decided["outcome"], decided["response"]) == ("rejected", "Stop")
        with pytest.raises(LoopgateClientError) as missing:
            await gate.cancel_request("no-such-request")
    assert (missing.value.status, missing.value.code) == (404, "request_not_found")


async def test_an_unreachable_server_and_a_foreign_error_are_reported(
    aiohttp_server: ServerFactory,
) -> None:
    async with LoopgateClient("http://127.0.0.1:1") as gate:  # nothing listens on port 1
        with pytest.raises(LoopgateClientError) as unreachable:
            await gate.get_session("s1")
    assert (unreachable.value.status, unreachable.value.code) == (0, "server_unreachable")

    async def bad_gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="upstream is down")

    proxy = web.Application()
    proxy.router.add_get("/v1/sessions/{id}", bad_gateway)
    server = await aiohttp_server(proxy)
    async with LoopgateClient(str(server.make_url("/"))) as gate:
        with pytest.raises(LoopgateClientError) as foreign:
            await gate.get_session("s1")
    assert (foreign.value.status, foreign.value.code) == (502, "http_error")
    assert foreign.value.message == "upstream is down"
