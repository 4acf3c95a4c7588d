"""The webhook route and the bot's life cycle: secret, bad updates, registration, polling."""

from __future__ import annotations

import msgspec
import pytest
from aiohttp import web

from loopgate.config import Config, ConfigError, TelegramConfig
from loopgate.events import RequestCreated, RequestDelivered, ResponseReceived
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from telegram.conftest import AppFactory
from telegram.fake_bot_api import TEST_TOKEN, FakeBotAPI
from telegram.helpers import (
    OPERATOR,
    SECRET_HEADER,
    WEBHOOK_SECRET,
    TelegramApp,
    telegram_config,
)


async def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_handled(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)
    update = tg.fake.callback_update(
        from_id=OPERATOR,
        chat_id=shown.chat_id,
        message_id=shown.message_id,
        data=shown.buttons()[0]["callback_data"],
    )
    for secret in ("wrong-secret", "", None):
        response = await tg.post_update(update, secret=secret)
        assert response.status == 401
        body = await response.json()
        assert body["error"]["code"] == "bad_webhook_secret"
        assert "X-Telegram-Bot-Api-Secret-Token" in body["error"]["message"]
    assert tg.fake.calls_to("answerCallbackQuery") == []
    assert await tg.event_types(request_id) == [RequestCreated, RequestDelivered]
    # The refused attempts did not use up the update: with the secret it is handled.
    assert (await tg.post_update(update)).status == 200
    assert (await tg.poll(request_id))["status"] == "completed"


@pytest.mark.parametrize(
    ("body", "code", "fragment"),
    [
        (b"{not json", "invalid_json", "malformed JSON"),
        (b"", "invalid_json", "empty"),
        (b"[1, 2]", "validation_failed", "object"),
        (b'{"message": {}}', "validation_failed", "update_id"),
        (b'{"update_id": "seven"}', "validation_failed", "update_id"),
        (b'{"update_id": 7, "message": {"text": "hi"}}', "invalid_update", "message"),
        (b'{"update_id": 8, "callback_query": 3}', "invalid_update", "callback_query"),
    ],
)
async def test_a_malformed_update_is_a_400(
    tg: TelegramApp, body: bytes, code: str, fragment: str
) -> None:
    response = await tg.post_update(body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["code"] == code
    assert fragment in error["message"]
    # The server is fine afterwards.
    await tg.register()
    await tg.delivered(await tg.ask())


async def test_updates_the_bot_has_no_use_for_are_acknowledged(tg: TelegramApp) -> None:
    edited = tg.fake.message_update(from_id=OPERATOR, chat_id=OPERATOR, text="typo")
    edited["edited_message"] = edited.pop("message") | {"edit_date": 1}
    unknown = {"update_id": 10, "message_reaction_from_the_future": {"x": 1}}
    for update in (edited, unknown):
        assert (await tg.post_update(update)).status == 200
    # The bot asks who it is at start (for deep links); it answers neither update.
    assert [call.method for call in tg.fake.calls if call.method != "getMe"] == []


async def test_the_webhook_is_registered_with_the_secret_and_the_update_types(
    tg_app: AppFactory, fake_telegram: FakeBotAPI
) -> None:
    await tg_app(webhook_url="https://gate.example.com/telegram/webhook")
    registered = await fake_telegram.wait_for_call("setWebhook")
    assert registered["url"] == "https://gate.example.com/telegram/webhook"
    assert registered["secret_token"] == telegram_config(fake_telegram).webhook_secret
    assert set(registered["allowed_updates"]) == {"message", "callback_query"}


async def test_without_telegram_there_is_no_webhook_route(client: web.Application) -> None:
    response = await client.post("/telegram/webhook", json={"update_id": 1})  # type: ignore[attr-defined]
    assert response.status == 404


async def test_polling_mode_deletes_the_webhook_and_handles_updates(
    tg_app: AppFactory, fake_telegram: FakeBotAPI
) -> None:
    tg = await tg_app(mode="polling")
    await fake_telegram.wait_for_call("deleteWebhook")
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)
    update = fake_telegram.callback_update(
        from_id=OPERATOR,
        chat_id=shown.chat_id,
        message_id=shown.message_id,
        data=shown.buttons()[0]["callback_data"],
    )
    fake_telegram.push_update(update)
    fake_telegram.push_update(update)  # a repeat, as after a lost offset
    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived) and answered.option == "Approve"
    await fake_telegram.wait_for_call("editMessageText")
    # The press's answer and the message's edit may come in either order.
    await fake_telegram.wait_for_call("answerCallbackQuery")
    assert len(fake_telegram.calls_to("answerCallbackQuery")) == 1
    assert (await tg.client.post("/telegram/webhook", json=update)).status == 404


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"mode": "webhook", "webhook_secret": ""}, "telegram.webhook_secret"),
        ({"bot_token": "not-a-token"}, "telegram.bot_token"),
    ],
)
async def test_a_telegram_set_up_that_cannot_work_stops_the_start(
    store: EventStore, config: Config, settings: dict[str, str], named: str
) -> None:
    telegram = msgspec.structs.replace(
        TelegramConfig(bot_token=TEST_TOKEN, mode="polling", webhook_secret="s"), **settings
    )
    with pytest.raises(ConfigError, match=named):
        create_app(msgspec.structs.replace(config, telegram=telegram), store=store)


async def test_the_webhook_answers_telegram_under_any_host(tg: TelegramApp) -> None:
    # Telegram calls the public name of telegram.webhook_url (a tunnel, a proxy): the
    # secret header is the webhook's check, not server.allowed_hosts.
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)
    update = tg.fake.callback_update(
        from_id=OPERATOR,
        chat_id=shown.chat_id,
        message_id=shown.message_id,
        data=shown.buttons()[0]["callback_data"],
    )
    headers = {SECRET_HEADER: WEBHOOK_SECRET, "Host": "bot.tunnel.example"}
    response = await tg.client.post("/telegram/webhook", json=update, headers=headers)
    assert response.status == 200, await response.text()
    assert (await tg.poll(request_id))["status"] == "completed"
    api = await tg.client.get("/hitl/pending", headers={"Host": "bot.tunnel.example"})
    assert api.status == 421  # the JSON API under that Host is the guard's
