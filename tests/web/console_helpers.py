"""Helpers for the web console tests (imported as a plain module, not a test file)."""

from __future__ import annotations

import asyncio
import html
import json
import re
from typing import Any

from account_helpers import PASSWORD, Client, User, log_in, sign_up, unique
from aiohttp import ClientResponse

from loopgate.store.base import EventStore

_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')
SESSION = {"session_id": "deploys", "client_id": "ci"}


def csrf_in(page: str) -> str:
    """The CSRF token of the first form on a page."""
    found = _CSRF.search(page)
    assert found is not None, "no form with a CSRF token on this page"
    return found.group(1)


async def sign_in(
    client: Client, username: str, password: str = PASSWORD, next_page: str = ""
) -> ClientResponse:
    """Fill in and send the sign-in form, as a browser would; the answer, not followed."""
    form = await client.get("/console/login")
    assert form.status == 200, await form.text()
    fields = {
        "csrf_token": csrf_in(await form.text()),
        "username": username,
        "password": password,
        "next": next_page,
    }
    return await client.post("/console/login", data=fields, allow_redirects=False)


async def operator(client: Client, name: str = "alice") -> User:
    """A new user, signed in to the console in ``client``'s cookie jar."""
    user = await sign_up(client, name)
    signed_in = await sign_in(client, user.username)
    assert signed_in.status == 303, await signed_in.text()
    return user


async def as_(client: Client, user: User) -> None:
    """Sign ``user`` in to the console, in place of whoever was."""
    client.session.cookie_jar.clear()
    signed_in = await sign_in(client, user.username)
    assert signed_in.status == 303, await signed_in.text()


async def token_of(client: Client) -> str:
    """The CSRF token of the signed-in browser's forms."""
    page = await client.get("/console/sessions")
    assert page.status == 200, await page.text()
    return csrf_in(await page.text())


async def submit(client: Client, path: str, **fields: Any) -> ClientResponse:
    """Post a console form with the signed-in browser's CSRF token; the answer, not followed."""
    data = {"csrf_token": await token_of(client), **fields}
    return await client.post(path, data=data, allow_redirects=False)


async def agent_session(client: Client, user: User, **fields: Any) -> None:
    """Register the agent's session in ``user``'s tenant, over the JSON API."""
    response = await client.post("/v1/sessions", json={**SESSION, **fields}, headers=user.bearer)
    assert response.status in (200, 201), await response.text()


_AGENTS: dict[tuple[int, str], User] = {}


async def agent_of(client: Client, user: User) -> User:
    """A teammate of ``user`` who runs the agent: a request ``user`` asked for
    themselves would be theirs never to answer (four eyes)."""
    key = (id(client), user.user_id)
    if key not in _AGENTS:
        username = unique("ci-bot")
        body = {"username": username, "password": PASSWORD, "role": "approver"}
        response = await client.post("/v1/members", json=body, headers=user.bearer)
        assert response.status == 201, await response.text()
        token = await log_in(client, username)
        _AGENTS[key] = User((await response.json())["user_id"], username, token)
    return _AGENTS[key]


async def ask(client: Client, user: User, message: str = "Deploy v2.1?", **fields: Any) -> str:
    """An agent's request in ``user``'s tenant, over REST, by their teammate's agent; its id."""
    body = {**SESSION, "message": message, "options": ["Approve", "Reject"], **fields}
    agent = await agent_of(client, user)
    response = await client.post("/hitl/request", json=body, headers=agent.bearer)
    assert response.status == 200, await response.text()
    request_id: str = (await response.json())["request_id"]
    return request_id


def text_of(page: str) -> str:
    """A page's text without tags and entities, its whitespace squeezed, for assertions."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


async def log_size(store: EventStore) -> int:
    return await store.head()


async def next_event(stream: ClientResponse, within: float = 5.0) -> dict[str, Any]:
    """The next event of an SSE response (heartbeat comments skipped), its data decoded."""
    async with asyncio.timeout(within):
        while True:
            line = (await stream.content.readline()).decode()
            assert line, "the stream ended"
            if line.startswith("data: "):
                event: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return event


async def poll_as(client: Client, user: User, request_id: str, **query: Any) -> dict[str, Any]:
    """The agent's ``/hitl/poll``, with ``user``'s credentials."""
    response = await client.get(
        "/hitl/poll", params={"request_id": request_id, **query}, headers=user.bearer
    )
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result
