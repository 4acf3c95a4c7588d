"""``approve_tool_use``: Claude Code's permission prompt, called as Claude Code calls it.

The official MCP client sends exactly what Claude Code sends to a
``--permission-prompt-tool``; a human answers on the console or over REST (with
edited args, or a grant); the tool's one text block is the JSON Claude Code reads.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx2
import msgspec
import pytest
from aiohttp.test_utils import TestServer
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from loopgate.config import Config, RequestsConfig
from loopgate.mcp.tools import permission_reply, tool_use_message
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.mcp import MCP_PATH
from mcptools.helpers import Live

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "claude-code" / ".mcp.json"
CLAUDE_CODE_INPUT = {
    "tool_name": "Bash",
    "input": {"command": "rm -rf build"},
    "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def reply_of(result: CallToolResult) -> dict[str, Any]:
    """The one text block, parsed: what Claude Code reads."""
    assert not result.is_error, result.content
    (block,) = result.content
    assert block.type == "text"
    reply: dict[str, Any] = json.loads(block.text)
    return reply


async def pending_request(live: Live) -> dict[str, Any]:
    for _ in range(200):
        listed = await live.rest("GET", "/v1/requests", params={"status": "pending"})
        if listed["requests"]:
            (found,) = listed["requests"]
            request: dict[str, Any] = found
            return request
        await asyncio.sleep(0.025)
    raise AssertionError("approve_tool_use made no request")


async def ask(
    live: Live, answer: Callable[[dict[str, Any]], Awaitable[None]], **arguments: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Call the tool as Claude Code would, answer its request, and return (reply, request)."""
    async with live.client() as client:
        call = asyncio.create_task(
            client.call_tool("approve_tool_use", {**CLAUDE_CODE_INPUT, **arguments})
        )
        request = await pending_request(live)
        await answer(request)
        reply = reply_of(await asyncio.wait_for(call, 10))
    return reply, await live.rest("GET", f"/v1/requests/{request['request_id']}")


class Console:
    """The server's first user (the default workspace's owner), signed in to the console."""

    def __init__(self, live: Live) -> None:
        self.live = live
        # A cookie for 127.0.0.1 needs the "unsafe" jar (cookies on IP addresses).
        self.browser = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.username = "alice"

    def url(self, path: str) -> str:
        return str(self.live.server.make_url(path))

    async def sign_in(self) -> None:
        account = {"username": self.username, "password": "correct horse battery staple"}
        await self.live.rest("POST", "/api/auth/register", json=account)
        self.live.first_user = self.username
        async with self.browser.get(self.url("/console/login")) as form:
            token = _CSRF.search(await form.text())
        assert token is not None
        fields = {"csrf_token": token.group(1), **account}
        async with self.browser.post(
            self.url("/console/login"), data=fields, allow_redirects=False
        ) as signed_in:
            assert signed_in.status == 303, await signed_in.text()

    async def answer(self, request_id: str, option: str) -> None:
        page_url = self.url(f"/console/requests/{request_id}")
        async with self.browser.get(page_url) as page:
            text = await page.text()
            assert page.status == 200, text
        assert "Claude Code wants to run Bash: rm -rf build" in text
        token = _CSRF.search(text)
        assert token is not None
        async with self.browser.post(
            f"{page_url}/answer",
            data={"csrf_token": token.group(1), "option": option},
            allow_redirects=False,
        ) as answered:
            assert answered.status == 303, await answered.text()
            assert "notice=answered" in answered.headers["Location"]


@pytest.fixture
async def console(live: Live) -> AsyncIterator[Console]:
    signed_in = Console(live)
    await signed_in.sign_in()
    yield signed_in
    await signed_in.browser.close()


async def test_a_console_approval_allows_the_call_as_asked(live: Live, console: Console) -> None:
    async def approve(request: dict[str, Any]) -> None:
        await console.answer(request["request_id"], "Allow")

    reply, request = await ask(live, approve)
    assert reply == {"behavior": "allow", "updatedInput": {"command": "rm -rf build"}}
    assert request["action"] == {"tool": "Bash", "args": {"command": "rm -rf build"}}
    assert (request["editable"], request["grantable"]) == (True, True)
    assert request["request_type"] == "confirmation"
    assert [(o["label"], o["approves"]) for o in request["options"]] == [
        ("Allow", True),
        ("Deny", False),
    ]
    assert request["message"] == "Claude Code wants to run Bash: rm -rf build"
    assert request["metadata"] == {"tool_use_id": CLAUDE_CODE_INPUT["tool_use_id"]}
    assert (request["decided_by"]["kind"], request["decided_by"]["channel"]) == ("human", "console")


async def test_a_console_rejection_denies_it_and_says_who(live: Live, console: Console) -> None:
    async def reject(request: dict[str, Any]) -> None:
        await console.answer(request["request_id"], "Deny")

    reply, request = await ask(live, reject)
    assert set(reply) == {"behavior", "message"}
    assert reply["behavior"] == "deny"
    assert reply["message"] == f"Rejected by {request['decided_by']['id']} on console"
    assert request["approved"] is False


async def test_args_an_approver_edited_are_the_updated_input(live: Live) -> None:
    edited = {"command": "rm -rf build/tmp"}

    async def edit(request: dict[str, Any]) -> None:
        path = f"/v1/requests/{request['request_id']}/response"
        await live.rest("POST", path, json={"option": "Allow", "args": edited})

    reply, request = await ask(live, edit)
    assert reply == {"behavior": "allow", "updatedInput": edited}
    assert request["edited"] is True
    assert request["decided_action"] == {"tool": "Bash", "args": edited}
    assert request["action"]["args"] == CLAUDE_CODE_INPUT["input"]


async def test_a_grant_allows_the_same_call_again_without_a_human(live: Live) -> None:
    async def grant(request: dict[str, Any]) -> None:
        path = f"/v1/requests/{request['request_id']}/response"
        body = {"option": "Allow", "grant": {"seconds": 600, "scope": "exact"}}
        await live.rest("POST", path, json=body)

    first, _ = await ask(live, grant)
    assert first["behavior"] == "allow"
    async with live.client() as client:
        again = await asyncio.wait_for(
            client.call_tool(
                "approve_tool_use", {**CLAUDE_CODE_INPUT, "tool_use_id": "toolu_01second"}
            ),
            5,
        )
        other = asyncio.create_task(
            client.call_tool(
                "approve_tool_use", {"tool_name": "Bash", "input": {"command": "rm -rf /"}}
            )
        )
        waiting = await pending_request(live)  # another command still asks a human
        assert waiting["action"]["args"] == {"command": "rm -rf /"}
        await live.rest(
            "POST", f"/v1/requests/{waiting['request_id']}/response", json={"option": "Deny"}
        )
        assert reply_of(await asyncio.wait_for(other, 10))["behavior"] == "deny"
    assert reply_of(again) == {"behavior": "allow", "updatedInput": {"command": "rm -rf build"}}
    listed = (await live.rest("GET", "/v1/requests"))["requests"]
    granted = next(r for r in listed if r["metadata"].get("tool_use_id") == "toolu_01second")
    assert granted["decided_by"]["kind"] == "policy"
    assert granted["decided_by"]["id"].startswith("grant:")


@pytest.fixture
async def hasty(
    store: EventStore, mcp_config: Config, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> AsyncIterator[Live]:
    """Requests expire after a second."""
    config = msgspec.structs.replace(mcp_config, requests=RequestsConfig(default_timeout_seconds=1))
    server = await aiohttp_server(create_app(config, store=store))
    async with Live(server) as live:
        yield live


async def test_no_answer_before_the_request_expires_denies(hasty: Live) -> None:
    async with hasty.client() as client:
        result = await asyncio.wait_for(client.call_tool("approve_tool_use", CLAUDE_CODE_INPUT), 15)
    assert reply_of(result) == {"behavior": "deny", "message": "No answer within 1 s"}
    (request,) = (await hasty.rest("GET", "/v1/requests"))["requests"]
    assert request["status"] in ("expired", "cancelled")


def test_the_message_renders_the_telling_field_shortly() -> None:
    assert tool_use_message("Bash", {"command": "ls  -la\n/tmp"}) == (
        "Claude Code wants to run Bash: ls -la /tmp"
    )
    assert tool_use_message("Edit", {"file_path": "a.py", "old_string": "x"}).endswith(": a.py")
    assert tool_use_message("Task", {"n": 1}) == 'Claude Code wants to run Task: {"n": 1}'
    long = tool_use_message("Bash", {"command": "x" * 1000})
    assert len(long) < 400 and long.endswith("…")


def test_denials_say_who_or_what() -> None:
    base = {"completed": True, "approved": False, "timeout_seconds": 300}
    human = {"kind": "human", "id": "bob", "channel": "telegram"}
    assert permission_reply({**base, "status": "answered", "decided_by": human}, {}) == {
        "behavior": "deny",
        "message": "Rejected by bob on telegram",
    }
    expired = {**base, "status": "expired", "decided_by": {"kind": "policy"}}
    assert permission_reply(expired, {})["message"] == "No answer within 300 s"
    cancelled = {**base, "status": "cancelled", "decided_by": {"kind": "agent"}}
    assert permission_reply(cancelled, {})["behavior"] == "deny"
    approved_expired = {**expired, "approved": True}  # an on_timeout approval is no human's
    assert permission_reply(approved_expired, {})["behavior"] == "deny"


async def test_the_example_mcp_json_points_at_our_route(live: Live) -> None:
    config = json.loads(EXAMPLE.read_text())
    (name,) = config["mcpServers"]
    assert name == "loopgate"  # so the tool is mcp__loopgate__approve_tool_use
    server = config["mcpServers"][name]
    assert server["type"] == "http"
    url = urlsplit(server["url"])
    assert url.path == MCP_PATH
    assert url.port == Config().server.port and url.hostname == Config().server.host
    assert server["headers"]["Authorization"] == "Bearer ${LOOPGATE_API_KEY}"
    # The example, aimed at this server, reaches the tool with the header filled in.
    key = await live.new_api_key()
    header = server["headers"]["Authorization"].replace("${LOOPGATE_API_KEY}", key)
    target = str(live.server.make_url(url.path))
    async with (
        httpx2.AsyncClient(headers={"Authorization": header}) as http,
        Client(streamable_http_client(target, http_client=http)) as client,
    ):
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "approve_tool_use" in names


async def test_the_tool_takes_exactly_claude_codes_input(live: Live) -> None:
    async with live.client() as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    schema = tools["approve_tool_use"].input_schema
    assert set(schema["properties"]) == {"tool_name", "input", "tool_use_id"}
    assert sorted(schema["required"]) == ["input", "tool_name"]
    assert schema["properties"]["input"]["type"] == "object"


async def test_a_call_loopgate_cannot_ask_about_is_denied_saying_why(live: Live) -> None:
    huge = {"tool_name": "Write", "input": {"file_path": "a.txt", "content": "x" * 20_000}}
    async with live.client() as client:
        reply = reply_of(await client.call_tool("approve_tool_use", huge))
    assert reply["behavior"] == "deny"
    assert reply["message"].startswith("Loopgate refused: ")
    assert "action" in reply["message"]
    assert (await live.rest("GET", "/v1/requests"))["requests"] == []
