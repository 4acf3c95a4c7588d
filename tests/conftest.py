"""Shared fixtures: every store-facing test runs once on SQLite and once on Postgres.

Postgres comes from ``LOOPGATE_TEST_DATABASE_URL`` (default: the local server as
user ``postgres``). Each test run creates its own database and drops it at the
end. Without a reachable server the Postgres cases skip, with the reason; with
``CI=true`` they fail instead, so CI can never go green by skipping them.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from server_key import TEST_SECRETS

from loopgate.config import Config, LimitsConfig, RequestsConfig
from loopgate.projections import PROJECTIONS
from loopgate.store import open_store
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

NO_RATE_LIMITS = LimitsConfig(create_rate=0, answer_rate=0, login_rate=0)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
# Every table a test can write to: emptied between tests on the shared Postgres database.
TABLES = (
    "events",
    *(projection.TABLE for projection in PROJECTIONS),
    "reactor_checkpoints",
    "telegram_updates",
    "rate_buckets",
)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    admin_url = os.environ.get("LOOPGATE_TEST_DATABASE_URL", DEFAULT_PG)
    name = f"loopgate_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        reason = f"Postgres not reachable at {admin_url}: {exc}"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: Postgres cases must run, not skip)")
        pytest.skip(reason)
    url = _with_database(admin_url, name)

    async def migrate() -> None:
        store = await open_store(url)
        await store.close()

    asyncio.run(migrate())
    yield url
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A URL for an empty store of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('store') / 'loopgate.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A URL for a database with no schema at all, for migration and CLI tests."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('fresh') / 'loopgate.db'}"
        return
    request.getfixturevalue("postgres_url")  # skips or fails like every Postgres case
    admin_url = os.environ.get("LOOPGATE_TEST_DATABASE_URL", DEFAULT_PG)
    name = f"loopgate_fresh_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    yield _with_database(admin_url, name)
    asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


StoreFactory = Callable[[], Awaitable[EventStore]]


@pytest.fixture
async def open_test_store(store_url: str) -> AsyncIterator[StoreFactory]:
    """Opens any number of stores on the same database; all are closed afterwards."""
    if not store_url.startswith("sqlite"):
        await _admin(store_url, f"TRUNCATE {', '.join(TABLES)}")
    opened: list[EventStore] = []

    async def factory() -> EventStore:
        store = await open_store(store_url)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()


@pytest.fixture
async def store(open_test_store: StoreFactory) -> EventStore:
    return await open_test_store()


@pytest.fixture
def config() -> Config:
    """The app's configuration in tests: defaults, with a short long-poll cap and no rate limits.

    Many tests run on a frozen clock, where no bucket would ever refill; the
    rate limits are tested where they are turned on (tests/web/test_rate_limits.py).
    """
    return Config(
        requests=RequestsConfig(max_wait_seconds=10),
        limits=NO_RATE_LIMITS,
        secrets=TEST_SECRETS,
    )


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]],
    store: EventStore,
    config: Config,
) -> TestClient[Any, Any]:
    """An HTTP client for the whole app (hub, expirer and all) on each backend's store."""
    return await aiohttp_client(create_app(config, store=store))
