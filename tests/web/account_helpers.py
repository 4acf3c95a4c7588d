"""Helpers for the account, API-key and tenancy tests (imported as a plain module)."""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]
AppClientFactory = Callable[..., Awaitable[Client]]

TEST_JWT_SECRET = "test-secret-" + "0123456789abcdef" * 4  # 76 bytes: long enough for HS512 too
PASSWORD = "correct horse battery staple"


class FakeClock:
    """The account service's clock, moved by hand; starts at the real time (tokens carry it)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class User(msgspec.Struct, frozen=True):
    user_id: str
    username: str
    token: str  # a login JWT

    @property
    def bearer(self) -> dict[str, str]:
        return bearer(self.token)


def unique(name: str) -> str:
    # Usernames are unique for the whole database, which Postgres keeps between tests.
    return f"{name}_{uuid.uuid4().hex[:8]}"


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def api_key(raw_key: str) -> dict[str, str]:
    return {"X-API-Key": raw_key}


_FIRST_USERS: weakref.WeakKeyDictionary[Client, str] = weakref.WeakKeyDictionary()


async def first_user(client: Client) -> str:
    """Register the server's first user once per client (it owns the default workspace)."""
    if client not in _FIRST_USERS:
        username = unique("first")
        response = await client.post(
            "/api/auth/register", json={"username": username, "password": PASSWORD}
        )
        assert response.status == 201, await response.text()
        _FIRST_USERS[client] = username
    return _FIRST_USERS[client]


async def sign_up(client: Client, name: str, password: str = PASSWORD) -> User:
    """Register ``name`` (made unique) and log in: a later self-registration, so a
    workspace of its own (after :func:`first_user`, who owns the default one)."""
    await first_user(client)
    username = unique(name)
    response = await client.post(
        "/api/auth/register", json={"username": username, "password": password}
    )
    assert response.status == 201, await response.text()
    token = await log_in(client, username, password)
    return User((await response.json())["user_id"], username, token)


async def log_in(client: Client, username: str, password: str = PASSWORD) -> str:
    response = await client.post(
        "/api/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200, await response.text()
    token: str = (await response.json())["token"]
    return token


async def new_key(client: Client, user: User, **body: Any) -> dict[str, Any]:
    """Create an API key for ``user``; the creation answer (with ``raw_key``)."""
    response = await client.post("/api/user/apikeys", json=body, headers=user.bearer)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def list_keys(client: Client, user: User) -> list[dict[str, Any]]:
    response = await client.get("/api/user/apikeys", headers=user.bearer)
    assert response.status == 200, await response.text()
    keys: list[dict[str, Any]] = await response.json()
    return keys
