"""``loopgate mcp --server URL``: the same tools on stdio, forwarded to a live server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp import Client, StdioServerParameters

from mcptools.helpers import Live, structured, text_of

TOOLS = {
    "request_human_input",
    "check_request_status",
    "cancel_request",
    "list_pending_requests",
    "register_session",
    "approve_tool_use",
}


@asynccontextmanager
async def stdio_client(live: Live, *args: str) -> AsyncIterator[Client]:
    server = str(live.server.make_url("/")).rstrip("/")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "loopgate", "mcp", "--server", server, *args],
        env={
            **os.environ,
            "LOOPGATE_MCP__PROGRESS_SECONDS": "0.2",
            "LOOPGATE_LOG__LEVEL": "warning",
        },
    )
    async with Client(params) as client:
        yield client


async def test_stdio_lists_the_tools_and_forwards_calls(live: Live) -> None:
    async with stdio_client(live) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        assert {"message", "options"} <= set(
            tools["request_human_input"].input_schema["properties"]
        )

        made = structured(
            await client.call_tool(
                "request_human_input",
                {"message": "Ship it?", "options": ["Ship", "Wait"], "wait": False},
            )
        )
        await live.rest(
            "POST", f"/v1/requests/{made['request_id']}/response", json={"option": "Wait"}
        )
        checked = structured(
            await client.call_tool("check_request_status", {"request_id": made["request_id"]})
        )
    assert (checked["status"], checked["response"]) == ("answered", "Wait")
    stored = await live.rest("GET", f"/v1/requests/{made['request_id']}")
    assert stored["session_id"] == "mcp"  # registered on the fly, like over HTTP


async def test_a_blocking_call_over_stdio_returns_the_answer_given_later(live: Live) -> None:
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with stdio_client(live) as client:
        call = asyncio.create_task(
            client.call_tool(
                "request_human_input",
                {"message": "Rotate the keys?", "request_type": "confirmation", "wait_seconds": 8},
                progress_callback=on_progress,
            )
        )
        for _ in range(200):
            listed = (await live.rest("GET", "/v1/requests"))["requests"]
            if listed:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)
        await live.rest(
            "POST", f"/v1/requests/{listed[0]['request_id']}/response", json={"option": "Approve"}
        )
        result = await call
    found = structured(result)
    assert (found["status"], found["approved"], found["response"]) == ("answered", True, "Approve")
    assert "approved" in text_of(result)
    assert progress


async def test_stdio_with_a_wrong_key_reports_the_servers_refusal(keyed: Live) -> None:
    async with stdio_client(keyed, "--api-key", "lk_pub_wrong") as client:
        refused = await client.call_tool("list_pending_requests", {})
    assert refused.is_error
    assert "invalid_api_key" in text_of(refused)


async def test_stdio_without_a_reachable_server_says_so() -> None:
    nowhere = "http://127.0.0.1:1"  # nothing listens on port 1
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "loopgate", "mcp", "--server", nowhere]
    )
    async with Client(params) as client:
        failed = await client.call_tool("list_pending_requests", {})
    assert failed.is_error and "server_unreachable" in text_of(failed)


async def test_stdio_forwards_claude_codes_permission_prompt(live: Live) -> None:
    asked = {"tool_name": "Bash", "input": {"command": "make test"}, "tool_use_id": "toolu_01x"}
    async with stdio_client(live) as client:
        call = asyncio.create_task(client.call_tool("approve_tool_use", asked))
        for _ in range(200):
            pending = (await live.rest("GET", "/v1/requests", params={"status": "pending"}))[
                "requests"
            ]
            if pending:
                break
            await asyncio.sleep(0.05)
        (request,) = pending
        edited = {"command": "make test-fast"}
        await live.rest(
            "POST",
            f"/v1/requests/{request['request_id']}/response",
            json={"option": "Allow", "args": edited},
        )
        result = await asyncio.wait_for(call, 20)
    assert json.loads(text_of(result)) == {"behavior": "allow", "updatedInput": edited}
