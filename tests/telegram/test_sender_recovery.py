"""Exactly once across restarts and processes: the sender's checkpoint and lease."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from loopgate.config import Config
from loopgate.events import RequestDelivered
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import TELEGRAM
from telegram.conftest import AppFactory
from telegram.fake_bot_api import FakeBotAPI
from telegram.helpers import OPERATOR, TelegramApp, telegram_config

Client = TestClient[Any, Any]
StoreFactory = Callable[[], Awaitable[EventStore]]  # the root conftest's open_test_store


async def test_a_restart_sends_what_came_meanwhile_and_nothing_twice(
    tg_app: AppFactory,
    store: EventStore,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    first = await tg_app()
    await first.register()
    before = await first.ask(request_type="confirmation", message="before the restart")
    shown = await first.delivered(before)
    await first.client.close()

    # Telegram is off while these happen: a new request, and an answer.
    without_telegram = await aiohttp_client(create_app(config, store=store))
    meanwhile = (
        await (
            await without_telegram.post(
                "/hitl/request",
                json={"session_id": "s1", "client_id": "agent", "message": "while away"},
            )
        ).json()
    )["request_id"]
    answered = await without_telegram.post(
        f"/v1/requests/{before}/response", json={"option": "Approve"}
    )
    assert answered.status == 200
    await without_telegram.close()

    second = await tg_app()
    await second.delivered(meanwhile)
    await second.fake.wait_for_call("editMessageText")
    texts = [call["text"] for call in second.fake.calls_to("sendMessage")]
    assert ["before the restart" in t for t in texts] == [True, False]
    assert ["while away" in t for t in texts] == [False, True]
    assert "Approved" in second.fake.messages[(shown.chat_id, shown.message_id)]["text"]


async def test_a_send_cut_short_by_a_stop_is_finished_after_the_restart(
    tg_app: AppFactory,
) -> None:
    first = await tg_app()
    first.fake.fail_next("sendMessage", retry_after=30)
    await first.register()
    request_id = await first.ask()
    await first.fake.wait_for_call("sendMessage", failed=True)
    await first.client.close()  # mid-wait: the checkpoint stays before the request

    second = await tg_app()
    shown = await second.delivered(request_id)
    assert shown.chat_id == OPERATOR
    deliveries = [e for e in await second.events(request_id) if isinstance(e, RequestDelivered)]
    assert len(deliveries) == 1


async def test_a_first_start_does_not_send_old_requests(
    store: EventStore,
    config: Config,
    tg_app: AppFactory,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    without_telegram = await aiohttp_client(create_app(config, store=store))
    await without_telegram.post(
        "/hitl/register", json={"session_id": "s1", "client_id": "a", "telegram_id": OPERATOR}
    )
    await without_telegram.post(
        "/hitl/request", json={"session_id": "s1", "client_id": "a", "message": "last week"}
    )
    await without_telegram.close()
    tg = await tg_app()
    fresh = await tg.ask(message="today")
    await tg.delivered(fresh)
    assert ["today" in c["text"] for c in tg.fake.calls_to("sendMessage")] == [True]


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_two_processes_send_each_request_once_and_hand_over(
    open_test_store: StoreFactory,
    fake_telegram: FakeBotAPI,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    """Two servers on one Postgres: one holds the lease and sends; the other takes over."""
    settings = msgspec.structs.replace(config, telegram=telegram_config(fake_telegram))
    apps: list[TelegramApp] = []
    for _ in range(2):
        store = await open_test_store()
        client = await aiohttp_client(create_app(settings, store=store))
        apps.append(TelegramApp(client, fake_telegram, store))
    a, b = apps
    holders = [app.client.app[TELEGRAM].sender for app in apps]
    assert [s is not None and s.held for s in holders] == [True, False]

    await a.register()
    asked = [await app.ask(message=f"question {i}") for i in range(3) for app in (a, b)]
    for request_id in asked:
        await a.delivered(request_id)
    assert len(fake_telegram.calls_to("sendMessage")) == len(asked)

    await a.client.close()  # the holder goes; the other takes the lease within seconds
    late = await b.ask(message="after the hand-over")
    shown = await b.delivered(late)
    assert shown.chat_id == OPERATOR
    assert len(fake_telegram.calls_to("sendMessage")) == len(asked) + 1
