"""The application skeleton: health checks, the error shape, request ids, body limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from loopgate import __version__
from loopgate.config import Config, RequestsConfig
from loopgate.errors import StoreUnavailable
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, store: EventStore) -> TestClient[Any, Any]:
    config = Config(requests=RequestsConfig(max_body_bytes=4096))
    return await aiohttp_client(create_app(config, store=store))  # type: ignore[arg-type]


def assert_error_shape(body: dict[str, Any], code: str) -> None:
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


async def test_health_answers_in_the_reference_shape(client: TestClient[Any, Any]) -> None:
    response = await client.get("/health")
    assert response.status == 200
    assert await response.json() == {
        "status": "healthy",
        "service": "loopgate",
        "version": __version__,
    }


async def test_healthz_and_readyz_report_ok_with_a_reachable_store(
    client: TestClient[Any, Any], store: EventStore
) -> None:
    assert (await client.get("/healthz")).status == 200
    response = await client.get("/readyz")
    assert response.status == 200
    assert await response.json() == {"status": "ready", "store": store.backend}  # type: ignore[attr-defined]


async def test_readyz_answers_503_in_the_error_shape_when_the_store_is_down(
    client: TestClient[Any, Any], store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unreachable() -> None:
        raise StoreUnavailable("database went away")

    monkeypatch.setattr(store, "ping", unreachable)
    response = await client.get("/readyz")
    assert response.status == 503
    assert_error_shape(await response.json(), "store_unavailable")


async def test_unknown_route_answers_json_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/no/such/route")
    assert response.status == 404
    assert response.content_type == "application/json"
    body = await response.json()
    assert_error_shape(body, "not_found")
    assert "/no/such/route" in body["error"]["message"]


async def test_wrong_method_answers_json_405_with_allow(client: TestClient[Any, Any]) -> None:
    response = await client.delete("/health")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert_error_shape(await response.json(), "method_not_allowed")


async def test_oversized_body_answers_413(client: TestClient[Any, Any]) -> None:
    response = await client.post("/health", data=b"x" * 5000)
    assert response.status == 413
    assert_error_shape(await response.json(), "payload_too_large")


async def test_oversized_chunked_body_answers_413_when_read(
    aiohttp_client: ClientFactory, store: EventStore
) -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = create_app(Config(requests=RequestsConfig(max_body_bytes=4096)), store=store)  # type: ignore[arg-type]
    app.router.add_post("/echo", echo)
    client = await aiohttp_client(app)

    async def chunks() -> Any:
        for _ in range(10):
            yield b"y" * 1000

    json_type = {"Content-Type": "application/json"}
    response = await client.post("/echo", data=chunks(), headers=json_type)
    assert response.status == 413
    assert_error_shape(await response.json(), "payload_too_large")


async def test_every_response_carries_a_request_id(client: TestClient[Any, Any]) -> None:
    for path in ("/health", "/no/such/route"):
        response = await client.get(path)
        assert len(response.headers["X-Request-ID"]) == 32


async def test_a_sent_request_id_is_echoed_and_a_hostile_one_replaced(
    client: TestClient[Any, Any],
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "agent-42.run:7"})
    assert response.headers["X-Request-ID"] == "agent-42.run:7"
    response = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["X-Request-ID"] != "bad id\twith spaces"


async def test_unexpected_errors_are_a_json_500_without_internals(
    aiohttp_client: ClientFactory, store: EventStore
) -> None:
    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail")

    app = create_app(Config(), store=store)  # type: ignore[arg-type]
    app.router.add_get("/broken", broken)
    client = await aiohttp_client(app)
    response = await client.get("/broken")
    assert response.status == 500
    body = await response.json()
    assert_error_shape(body, "internal_error")
    assert "secret" not in body["error"]["message"]
