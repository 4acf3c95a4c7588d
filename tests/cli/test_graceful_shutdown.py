"""SIGTERM stops accepting connections but lets an in-flight request finish."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from loopgate.cli.server import serve
from loopgate.config import Config, DatabaseConfig, ServerConfig
from loopgate.web import app as app_module


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_sigterm_lets_in_flight_requests_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()

    async def slow(request: web.Request) -> web.Response:
        started.set()
        await asyncio.sleep(1.0)
        return web.json_response({"finished": True})

    real_create_app = app_module.create_app

    def create_app_with_slow_route(config: Config) -> web.Application:
        app = real_create_app(config)
        app.router.add_get("/slow", slow)
        return app

    monkeypatch.setattr(app_module, "create_app", create_app_with_slow_route)
    port = _free_port()
    config = Config(
        server=ServerConfig(port=port, shutdown_timeout_seconds=10),
        database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'loopgate.db'}"),
    )
    server = asyncio.create_task(serve(config))
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(f"{base}/healthz"):
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        in_flight = asyncio.create_task(session.get(f"{base}/slow"))
        await asyncio.wait_for(started.wait(), 5)
        os.kill(os.getpid(), signal.SIGTERM)
        response = await asyncio.wait_for(in_flight, 10)
        assert response.status == 200
        assert await response.json() == {"finished": True}
        await asyncio.wait_for(server, 10)
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"{base}/healthz")
