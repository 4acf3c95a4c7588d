"""Fixtures for the MCP tests: a live server (aiohttp's test server) and the SDK's own client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from loopgate.config import AuthConfig, Config, McpConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from mcptools.helpers import Live


@pytest.fixture
def mcp_config(config: Config) -> Config:
    """Progress every 0.2 s, so a test sees notifications without waiting ten seconds."""
    return msgspec.structs.replace(config, mcp=McpConfig(progress_seconds=0.2, max_wait_seconds=10))


@pytest.fixture
async def live(
    store: EventStore, mcp_config: Config, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[Live]:
    """The server in its loopback quick-start mode: no key needed."""
    server = await aiohttp_server(create_app(mcp_config, store=store))
    async with Live(server) as live:
        yield live


@pytest.fixture
async def keyed(
    store: EventStore, mcp_config: Config, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[Live]:
    """The server as on a public address: API keys required."""
    auth = AuthConfig(require_api_key="true", jwt_secret="mcp-test-secret-" + "0" * 32)
    server = await aiohttp_server(
        create_app(msgspec.structs.replace(mcp_config, auth=auth), store=store)
    )
    async with Live(server) as live:
        yield live
