"""Fixtures for the receipts tests: the app in the open loopback mode, on a clock of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from receipt_helpers import Client, FakeClock

from loopgate.config import Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
    clock: FakeClock,
) -> Client:
    """The whole app, open mode (anonymous callers act in ``local``), on the test clock."""
    return await aiohttp_client(create_app(config, store=store, clock=clock))


AppFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def app_on(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], config: Config
) -> AppFactory:
    """Another app (as another server process would be) on a store of one's choosing."""

    async def factory(store: EventStore, **options: Any) -> Client:
        return await aiohttp_client(create_app(options.pop("config", config), store=store))

    return factory
