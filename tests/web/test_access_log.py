"""The access log names a credential in the path by its parameter, never its value."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from loopgate.web.app import request_id_middleware


async def test_an_invitation_token_in_the_path_is_not_logged() -> None:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application(middlewares=[request_id_middleware])
    app.router.add_get("/console/join/{token}", ok)
    app.router.add_get("/v1/requests/{request_id}", ok)
    async with TestClient(TestServer(app)) as client:
        with capture_logs() as logs:
            await client.get("/console/join/s3cret-token-value")
            await client.get("/v1/requests/r-1")
    paths = [entry["path"] for entry in logs if entry["event"] == "http"]
    assert paths == ["/console/join/{token}", "/v1/requests/r-1"]
