"""Browser tests: a real server on a TCP port, driven by Debian's Chromium through Playwright.

Playwright's own browser downloads are never used: the tests launch
``/usr/bin/chromium`` (``apt-get install chromium``). Without it they skip,
with the reason, except under ``CI=true``, where that is a failure.

The server runs in the test's event loop (aiohttp's ``AppRunner`` on a free
port, as ``loopgate serve`` runs it), on a SQLite store: these tests are about
what the browser shows and does; every store-facing behaviour behind the
console is covered on both backends by ``tests/web/test_console_*.py``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from browser_helpers import Server
from playwright.async_api import Browser, async_playwright

from loopgate.config import AuthConfig, Config, DatabaseConfig
from loopgate.web.app import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI=true: the browser tests must run, not skip")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    config = Config(
        database=DatabaseConfig(url=f"sqlite:///{tmp_path / 'loopgate.db'}"),
        auth=AuthConfig(jwt_secret="browser-test-secret-" + "0123456789abcdef" * 3),
    )
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession() as http:
        yield Server(f"http://{host}:{port}", http, app)
    await runner.cleanup()


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (git-ignored), for people to look at after a run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
