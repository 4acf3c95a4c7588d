"""Fixtures for the account and tenancy tests: apps with chosen auth settings and a clock."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from account_helpers import TEST_JWT_SECRET, AppClientFactory, Client, FakeClock, User
from aiohttp import web
from console_helpers import agent_session, operator

from loopgate.config import AuthConfig, Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app_client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
    clock: FakeClock,
) -> AppClientFactory:
    """Build a client for the app with ``auth`` settings changed (a known JWT secret by default)."""

    async def factory(**auth: Any) -> Client:
        settings = AuthConfig(**{"jwt_secret": TEST_JWT_SECRET, **auth})
        app = create_app(msgspec.structs.replace(config, auth=settings), store=store, clock=clock)
        return await aiohttp_client(app)

    return factory


@pytest.fixture
async def keyed_client(app_client: AppClientFactory) -> Client:
    """The app with ``auth.require_api_key = true``, as on a public address."""
    return await app_client(require_api_key="true")


@pytest.fixture
async def open_client(app_client: AppClientFactory) -> Client:
    """The app in the loopback quick-start mode (anonymous callers allowed), with a known secret."""
    return await app_client()


@pytest.fixture
async def user(open_client: Client) -> User:
    """A user signed in to the console in ``open_client``, with the agent session ``deploys``."""
    user = await operator(open_client)
    await agent_session(open_client, user)
    return user
