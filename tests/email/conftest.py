"""Fixtures for the email tests: a local SMTP server (aiosmtpd) and the app mailing through it.

aiosmtplib runs unmodified; only ``email.smtp_url`` points it at the test's
server, started per test on a free port of 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from email_helpers import AppFactory, EmailApp, email_config
from smtp_sink import SmtpSink

from loopgate.config import Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

Client = TestClient[Any, Any]


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def email_app(
    store: EventStore,
    smtp: SmtpSink,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> AppFactory:
    """Start the app with email on; ``aiohttp_client`` last, so the app stops before the rest."""

    async def factory(**email: Any) -> EmailApp:
        settings = email_config(smtp, **email)
        app = create_app(msgspec.structs.replace(config, email=settings), store=store)
        return EmailApp(await aiohttp_client(app), smtp, store)

    return factory


@pytest.fixture
async def mail(email_app: AppFactory) -> EmailApp:
    return await email_app()
