"""Fixtures for the Telegram tests: a fake Bot API server and the app pointed at it.

aiogram runs unmodified; only ``telegram.api_base`` points it at the fake
(``fake_bot_api.py``). Updates go in through the webhook route with the secret,
or through the fake's ``getUpdates`` in polling mode.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from loopgate.config import Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from telegram.fake_bot_api import FakeBotAPI, running_fake
from telegram.helpers import TelegramApp, telegram_config

Client = TestClient[Any, Any]
AppFactory = Callable[..., Awaitable[TelegramApp]]


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeBotAPI]:
    async with running_fake() as fake:
        yield fake


@pytest.fixture
def tg_app(
    store: EventStore,
    fake_telegram: FakeBotAPI,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> AppFactory:
    """Start the app with Telegram on (webhook mode unless told otherwise).

    ``aiohttp_client`` comes last so the app stops before the store and the
    fake close: the sender saves its checkpoint and closes its bot on the way out.
    """

    async def factory(**telegram: Any) -> TelegramApp:
        settings = telegram_config(fake_telegram, **telegram)
        app = create_app(msgspec.structs.replace(config, telegram=settings), store=store)
        return TelegramApp(await aiohttp_client(app), fake_telegram, store)

    return factory


@pytest.fixture
async def tg(tg_app: AppFactory) -> TelegramApp:
    return await tg_app()
