"""Fixtures for the Slack tests: a fake Slack Web API and the app pointed at it.

slack_sdk and slack_bolt run unmodified; only ``slack.api_base`` points them
at the fake (``fake_slack_api.py``). Clicks and slash commands go in through
``POST /slack/events``, signed with the signing secret as Slack signs them
(``helpers.signed_headers``), or over the fake's WebSocket in socket mode.
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
from slack_channel.fake_slack_api import FakeSlackAPI, running_fake
from slack_channel.helpers import SlackApp, slack_config

Client = TestClient[Any, Any]
AppFactory = Callable[..., Awaitable[SlackApp]]


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlackAPI]:
    async with running_fake() as fake:
        yield fake


@pytest.fixture
def slack_app(
    store: EventStore,
    fake_slack: FakeSlackAPI,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> AppFactory:
    """Start the app with Slack on (http mode unless told otherwise).

    ``aiohttp_client`` comes last so the app stops before the store and the
    fake close: the sender saves its checkpoint on the way out.
    """

    async def factory(**slack: Any) -> SlackApp:
        settings = slack_config(fake_slack, **slack)
        app = create_app(msgspec.structs.replace(config, slack=settings), store=store)
        return SlackApp(await aiohttp_client(app), fake_slack, store)

    return factory


@pytest.fixture
async def sl(slack_app: AppFactory) -> SlackApp:
    return await slack_app()
