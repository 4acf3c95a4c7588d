"""The ASGI bridge: scope, body streaming, response streaming, disconnects, shutdown."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import anyio
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from yarl import URL

from loopgate.web.asgi import (
    ASGIBridge,
    BackgroundContext,
    Message,
    Receive,
    Scope,
    Send,
    ShuttingDown,
)
from loopgate.web.errors import error_middleware

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def make_app(bridge: ASGIBridge, prefix: str = "/mcp") -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app.router.add_route("*", prefix, bridge.handle)
    app.router.add_route("*", prefix + "/{tail:.*}", bridge.handle)

    async def ping(request: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def close_bridge(app: web.Application) -> None:
        await bridge.close()

    app.router.add_get("/ping", ping)
    app.on_shutdown.append(close_bridge)
    return app


@asynccontextmanager
async def served(app: web.Application, shutdown_timeout: float = 10.0) -> AsyncIterator[Any]:
    """Serve as ``loopgate serve`` does (no handler cancellation on disconnect)."""
    runner = web.AppRunner(app, shutdown_timeout=shutdown_timeout, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", runner
    finally:
        if runner.server is not None:
            await runner.cleanup()


async def read_body(receive: Receive) -> tuple[bytes, int]:
    body, calls = b"", 0
    while True:
        message = await receive()
        calls += 1
        assert message["type"] == "http.request"
        body += message["body"]
        if not message.get("more_body", False):
            return body, calls


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    body, calls = await read_body(receive)
    payload = {
        key: scope[key].decode() if isinstance(scope[key], bytes) else scope[key]
        for key in ("method", "path", "raw_path", "query_string", "root_path", "http_version")
    }
    payload |= {
        "headers": [[k.decode(), v.decode()] for k, v in scope["headers"]],
        "asgi": scope["asgi"],
        "client": list(scope["client"]),
        "server": list(scope["server"]),
        "body": body[:100].decode(),
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "receive_calls": calls,
    }
    await send(
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [
                (b"content-type", b"application/json"),
                (b"set-cookie", b"a=1"),
                (b"set-cookie", b"b=2"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


async def test_round_trip(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_app(ASGIBridge(echo)))
    headers = [("X-Rep", "one"), ("X-Rep", "two"), ("X-Single", "v")]
    url = URL("/mcp/a%20b/c?x=1&y=%2F", encoded=True)  # as sent, not requoted by the client
    resp = await client.post(url, data=b"hello", headers=headers)
    assert resp.status == 201
    assert resp.headers.getall("Set-Cookie") == ["a=1", "b=2"]
    got = await resp.json()
    assert got["method"] == "POST"
    assert got["path"] == "/mcp/a b/c"
    assert got["raw_path"] == "/mcp/a%20b/c"
    assert got["query_string"] == "x=1&y=%2F"
    assert got["root_path"] == ""
    assert got["http_version"] == "1.1"
    assert got["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert got["client"][0] == "127.0.0.1"
    assert got["server"][1] == client.port
    assert ["x-rep", "one"] in got["headers"] and ["x-rep", "two"] in got["headers"]
    assert ["x-single", "v"] in got["headers"]
    assert all(name == name.lower() for name, _ in got["headers"])
    assert got["body"] == "hello"

    resp = await client.get("/mcp")
    got = await resp.json()
    assert (got["method"], got["path"], got["size"]) == ("GET", "/mcp", 0)
    assert got["receive_calls"] == 1


async def test_large_streamed_body(aiohttp_client: ClientFactory) -> None:
    client = await aiohttp_client(make_app(ASGIBridge(echo)))
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256(block * 5).hexdigest()

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield block

    resp = await client.post("/mcp", data=chunks())
    got = await resp.json()
    assert got["size"] == 5 * len(block)
    assert got["sha256"] == expected
    assert got["receive_calls"] > 5  # delivered in chunks with more_body, not in one piece


async def test_starlette_routes_at_the_mounted_path(aiohttp_client: ClientFactory) -> None:
    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path, "body": (await request.body()).decode()})

    async def sub(request: Request) -> PlainTextResponse:
        return PlainTextResponse("sub")

    starlette = Starlette(
        routes=[Route("/mcp", endpoint, methods=["GET", "POST"]), Route("/mcp/sub", sub)]
    )
    client = await aiohttp_client(make_app(ASGIBridge(starlette)))

    resp = await client.post("/mcp", data=b"{}")
    assert resp.status == 200
    assert await resp.json() == {"path": "/mcp", "body": "{}"}
    resp = await client.get("/mcp/sub")
    assert (resp.status, await resp.text()) == (200, "sub")
    resp = await client.get("/mcp/missing")
    assert resp.status == 404


async def test_chunks_reach_the_client_as_they_are_sent(aiohttp_client: ClientFactory) -> None:
    release = asyncio.Event()

    async def events() -> AsyncIterator[bytes]:
        yield b"data: first\n\n"
        await release.wait()
        yield b"data: second\n\n"

    async def sse(request: Request) -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    starlette = Starlette(routes=[Route("/mcp", sse)])
    client = await aiohttp_client(make_app(ASGIBridge(starlette)))

    resp = await client.get("/mcp")
    assert resp.headers["Content-Type"].startswith("text/event-stream")
    async with asyncio.timeout(5):
        first = await resp.content.readuntil(b"\n\n")
    assert first == b"data: first\n\n"
    assert not release.is_set()
    release.set()
    assert await resp.read() == b"data: second\n\n"


def watching_app(record: dict[str, Any]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """Reads the body, starts streaming, then waits in receive() for the client to leave."""
    watched = asyncio.Event()
    record["watched"] = watched
    record["calls_after_body"] = 0

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        record["body"], _ = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        record["calls_after_body"] += 1
        message: Message = await receive()
        record["message"] = message
        watched.set()

    return app


async def assert_disconnect_seen(resp: aiohttp.ClientResponse, record: dict[str, Any]) -> None:
    assert await resp.content.readexactly(5) == b"first"
    await asyncio.sleep(0.3)  # receive() must block, not hand out anything meanwhile
    assert "message" not in record
    resp.close()  # the client goes away mid-stream
    async with asyncio.timeout(5):
        await record["watched"].wait()
    assert record["message"] == {"type": "http.disconnect"}
    assert record["calls_after_body"] == 1
    assert record["body"] == b"payload"


async def test_disconnect_with_handler_cancellation(aiohttp_client: ClientFactory) -> None:
    record: dict[str, Any] = {}
    client = await aiohttp_client(make_app(ASGIBridge(watching_app(record))))  # cancels handlers
    resp = await client.post("/mcp", data=b"payload")
    await assert_disconnect_seen(resp, record)
    assert (await client.get("/ping")).status == 200


async def test_disconnect_without_handler_cancellation() -> None:
    record: dict[str, Any] = {}
    app = make_app(ASGIBridge(watching_app(record), poll_interval=0.05))
    async with served(app) as (url, _), aiohttp.ClientSession() as session:
        resp = await session.post(url + "/mcp", data=b"payload")
        await assert_disconnect_seen(resp, record)


async def test_receive_after_a_finished_response_says_disconnect(
    aiohttp_client: ClientFactory,
) -> None:
    seen: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_body(receive)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        seen.append(await receive())

    client = await aiohttp_client(make_app(ASGIBridge(app)))
    assert (await client.get("/mcp")).status == 204
    assert seen == [{"type": "http.disconnect"}]


async def test_a_crash_before_the_response_is_a_json_500(aiohttp_client: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] == "/mcp/silent":
            return
        raise RuntimeError("boom")

    client = await aiohttp_client(make_app(ASGIBridge(app)))
    for path in ("/mcp", "/mcp/silent"):
        resp = await client.get(path)
        assert resp.status == 500
        body = await resp.json()
        assert body["error"]["code"] == "internal_error"
        assert "boom" not in body["error"]["message"]
    assert (await client.get("/ping")).status == 200


async def test_a_crash_mid_response_truncates_it(aiohttp_client: ClientFactory) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom")

    client = await aiohttp_client(make_app(ASGIBridge(app)))
    resp = await client.get("/mcp")
    with pytest.raises(aiohttp.ClientPayloadError):
        await resp.read()
    assert (await client.get("/ping")).status == 200


async def test_close_cancels_in_flight_calls_and_shutdown_is_prompt() -> None:
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"open", "more_body": True})
        entered.set()
        try:
            await asyncio.Event().wait()  # an SSE stream that never ends by itself
        except asyncio.CancelledError:
            cancelled.set()
            raise

    bridge = ASGIBridge(app)
    async with (
        served(make_app(bridge), shutdown_timeout=10) as (url, runner),
        aiohttp.ClientSession() as session,
    ):
        resp = await session.get(url + "/mcp")
        assert await resp.content.readexactly(4) == b"open"
        await entered.wait()
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 2
        assert cancelled.is_set()
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
        resp.close()
    with pytest.raises(ShuttingDown):  # a closed bridge refuses new calls
        await bridge.handle(None)  # type: ignore[arg-type]


@asynccontextmanager
async def task_group_context(log: list[str]) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep_forever)
        log.append("entered")
        try:
            yield
        finally:
            tg.cancel_scope.cancel()
            log.append("exiting")
    log.append("exited")


async def test_background_context_enters_and_exits_in_its_own_task() -> None:
    log: list[str] = []
    background = BackgroundContext()
    await asyncio.create_task(background.start(task_group_context(log)))
    assert log == ["entered"]
    await asyncio.create_task(background.stop())  # another task than the one that started it
    assert log == ["entered", "exiting", "exited"]
    await background.stop()  # idempotent


async def test_background_context_reraises_errors_on_entering() -> None:
    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        raise ValueError("cannot start")
        yield

    background = BackgroundContext()
    with pytest.raises(ValueError, match="cannot start"):
        await background.start(broken())
    await background.stop()
