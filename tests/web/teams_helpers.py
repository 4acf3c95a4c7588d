"""Helpers for the teams tests: a workspace's owner and members in each role (a plain module)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from account_helpers import PASSWORD, Client, User, first_user, log_in, unique
from aiohttp import ClientResponse
from console_helpers import csrf_in


async def first_owner(client: Client) -> User:
    """The server's first user, logged in: owner of the default workspace."""
    username = await first_user(client)
    token = await log_in(client, username)
    me = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200, await me.text()
    return User((await me.json())["user_id"], username, token)


async def add_member(client: Client, by: User, name: str, role: str) -> User:
    """``by`` makes an account in their workspace with ``role``; the new member, logged in."""
    username = unique(name)
    body = {"username": username, "password": PASSWORD, "role": role}
    response = await client.post("/v1/members", json=body, headers=by.bearer)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return User(created["user_id"], username, await log_in(client, username))


async def invite(client: Client, by: User, role: str) -> str:
    """An invitation's join path (``/console/join/<token>``), made by ``by``."""
    response = await client.post("/v1/invitations", json={"role": role}, headers=by.bearer)
    assert response.status == 201, await response.text()
    return urlsplit((await response.json())["url"]).path


async def join(
    client: Client, path: str, username: str, password: str = PASSWORD, again: str | None = None
) -> ClientResponse:
    """Open an invitation and send its form, as a signed-out browser would; not followed."""
    client.session.cookie_jar.clear()
    page = await client.get(path)
    assert page.status == 200, await page.text()
    fields = {
        "csrf_token": csrf_in(await page.text()),
        "username": username,
        "password": password,
        "password_again": password if again is None else again,
    }
    return await client.post(path, data=fields, allow_redirects=False)


async def members_of(client: Client, user: User) -> dict[str, dict[str, Any]]:
    """The workspace's members as ``user`` sees them, by username."""
    response = await client.get("/v1/members", headers=user.bearer)
    assert response.status == 200, await response.text()
    return {m["username"]: m for m in await response.json()}
