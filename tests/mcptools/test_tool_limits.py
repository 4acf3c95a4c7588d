"""The REST limits hold over MCP: creation takes from the caller's bucket, waits hold a slot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import pytest
from aiohttp.test_utils import TestServer

from loopgate.config import Config, LimitsConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import HUB
from mcptools.helpers import Live, text_of


@pytest.fixture
async def tight(
    store: EventStore, mcp_config: Config, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[Live]:
    """Two creations per caller (the next only minutes later) and one waiter per process."""
    limits = LimitsConfig(
        create_rate=0.01, create_burst=2, answer_rate=0, login_rate=0, max_waiters=1
    )
    config = msgspec.structs.replace(mcp_config, limits=limits)
    async with Live(await aiohttp_server(create_app(config, store=store))) as live:
        yield live


async def test_request_human_input_is_refused_past_the_creation_burst(tight: Live) -> None:
    async with tight.client() as client:
        results = [
            await client.call_tool("request_human_input", {"message": "Go?", "wait": False})
            for _ in range(3)
        ]
    assert [r.is_error for r in results] == [False, False, True]
    assert "rate_limited: " in text_of(results[2])
    assert len((await tight.rest("GET", "/v1/requests"))["requests"]) == 2


async def test_a_wait_over_the_cap_is_a_tool_error_and_the_request_stays(tight: Live) -> None:
    with tight.server.app[HUB].park("another-workspace"):
        async with tight.client() as client:
            result = await client.call_tool(
                "request_human_input", {"message": "Anyone?", "wait_seconds": 5}
            )
    assert result.is_error and "too_many_waiters: " in text_of(result)
    assert len((await tight.rest("GET", "/v1/requests"))["requests"]) == 1
