"""A live Loopgate for the MCP tests: the SDK's client on /mcp, and REST beside it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any

import aiohttp
import httpx2
from aiohttp.test_utils import TestServer
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from loopgate.web.keys import HUB


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if block.type == "text")


class Live:
    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.http = aiohttp.ClientSession()
        self.first_user = ""

    async def __aenter__(self) -> Live:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.http.close()

    @property
    def url(self) -> str:
        return str(self.server.make_url("/mcp"))

    @asynccontextmanager
    async def client(
        self, mode: str = "auto", headers: dict[str, str] | None = None
    ) -> AsyncIterator[Client]:
        async with httpx2.AsyncClient(headers=headers or {}) as http:
            transport = streamable_http_client(self.url, http_client=http)
            async with Client(transport, mode=mode) as client:
                yield client

    async def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(method, str(self.server.make_url(path)), **kwargs) as got:
            body = await got.json()
            assert got.status < 300, body
            return body

    async def new_api_key(self) -> str:
        """Sign up a fresh user with a workspace of their own and make them an API key.

        The server's first user, who owns the default workspace (where anonymous
        calls land), is registered before, once.
        """
        if not self.first_user:
            first = {"username": f"first_{uuid.uuid4().hex[:8]}", "password": "x" * 12}
            await self.rest("POST", "/api/auth/register", json=first)
            self.first_user = first["username"]
        username = f"agent_{uuid.uuid4().hex[:8]}"
        account = {"username": username, "password": "correct horse battery staple"}
        await self.rest("POST", "/api/auth/register", json=account)
        token = (await self.rest("POST", "/api/auth/login", json=account))["token"]
        created = await self.rest(
            "POST",
            "/api/user/apikeys",
            json={"label": "mcp"},
            headers={"Authorization": f"Bearer {token}"},
        )
        raw_key: str = created["raw_key"]
        return raw_key

    @property
    def waiting(self) -> int:
        """Long-polls and tool calls waiting on the hub right now."""
        return self.server.app[HUB].waiting
