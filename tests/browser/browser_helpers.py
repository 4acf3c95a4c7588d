"""Helpers for the browser tests (imported as a plain module, not a test file)."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
from aiohttp import web
from playwright.async_api import Page, expect

PASSWORD = "correct horse battery staple"


class Operator(msgspec.Struct, frozen=True):
    username: str
    token: str  # a login JWT
    agent_token: str = ""
    """The login JWT of the teammate whose agent asks (:func:`ask`): who asks never answers."""

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.agent_token}"}


class Server(msgspec.Struct, frozen=True):
    base: str
    http: aiohttp.ClientSession  # the agent's side: plain REST calls
    app: web.Application  # for what no route does yet (a test arranges the log through it)


async def call(server: Server, method: str, path: str, **kwargs: Any) -> Any:
    async with server.http.request(method, server.base + path, **kwargs) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def new_operator(server: Server, username: str = "alice") -> Operator:
    """A user with an agent session ``deploys`` in their tenant, and a teammate who runs it."""
    credentials = {"username": username, "password": PASSWORD}
    await call(server, "POST", "/api/auth/register", json=credentials)
    token = (await call(server, "POST", "/api/auth/login", json=credentials))["token"]
    bot = {"username": f"{username}-bot", "password": PASSWORD}
    headers = {"Authorization": f"Bearer {token}"}
    await call(server, "POST", "/v1/members", json=bot | {"role": "approver"}, headers=headers)
    agent_token = (await call(server, "POST", "/api/auth/login", json=bot))["token"]
    operator = Operator(username, token, agent_token)
    session = {"session_id": "deploys", "client_id": "ci", "telegram_id": 42}
    await call(server, "POST", "/hitl/register", json=session, headers=operator.bearer)
    return operator


async def ask(server: Server, operator: Operator, message: str, **fields: Any) -> str:
    """The agent asks over REST; the request's id."""
    body = {"session_id": "deploys", "client_id": "ci", "message": message, **fields}
    created = await call(server, "POST", "/hitl/request", json=body, headers=operator.agent)
    request_id: str = created["request_id"]
    return request_id


async def sign_in(page: Page, server: Server, operator: Operator) -> None:
    """Sign in through the form, as a person would, and land on the queue."""
    await page.goto(f"{server.base}/console")
    await expect(page).to_have_url(f"{server.base}/console/login")
    await page.get_by_label("Username").fill(operator.username)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{server.base}/console")
