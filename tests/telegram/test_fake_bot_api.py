"""The fake Bot API, checked through a real aiogram Bot so it speaks what aiogram expects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update

from telegram.fake_bot_api import BOT_ID, TEST_TOKEN, FakeBotAPI, running_fake

CHAT = 42


def keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Approve", callback_data=data)]]
    )


def make_bot(fake: FakeBotAPI, token: str = TEST_TOKEN) -> Bot:
    return Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotAPI]:
    async with running_fake() as fake:
        yield fake


@pytest.fixture
async def bot(fake: FakeBotAPI) -> AsyncIterator[Bot]:
    bot = make_bot(fake)
    yield bot
    await bot.session.close()


class UnknownMethod(TelegramMethod[bool]):
    """A method the fake does not implement."""

    __returning__ = bool
    __api_method__ = "sendDice"


async def test_get_me(bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (BOT_ID, True, "loopgate_test_bot")


async def test_send_message_round_trips_inline_keyboard(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(
        CHAT, "<b>Deploy?</b>", parse_mode="HTML", reply_markup=keyboard("a:1")
    )
    second = await bot.send_message(CHAT, "again")

    assert sent.message_id == 1 and second.message_id == 2
    assert sent.chat.id == CHAT and sent.text == "<b>Deploy?</b>"
    assert sent.reply_markup is not None
    assert sent.reply_markup.inline_keyboard[0][0].callback_data == "a:1"
    params = fake.calls_to("sendMessage")[0]
    assert params["chat_id"] == CHAT
    assert params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Approve", "callback_data": "a:1"}]]
    }
    stored = fake.messages[CHAT, 1]
    assert (stored["text"], stored["parse_mode"]) == ("<b>Deploy?</b>", "HTML")
    assert "reply_markup" not in fake.messages[CHAT, 2]


async def test_text_fields_stay_strings(fake: FakeBotAPI, bot: Bot) -> None:
    await bot.send_message(CHAT, "42")
    assert fake.messages[CHAT, 1]["text"] == "42"


async def test_edit_message_text_updates_messages(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "pending", reply_markup=keyboard("a:1"))

    edited = await bot.edit_message_text("approved", chat_id=CHAT, message_id=sent.message_id)

    assert isinstance(edited, Message)
    assert edited.text == "approved" and edited.reply_markup is None
    assert fake.messages[CHAT, sent.message_id]["text"] == "approved"
    assert "reply_markup" not in fake.messages[CHAT, sent.message_id]


async def test_same_edit_twice_is_not_modified(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "pending")
    await bot.edit_message_text("done", chat_id=CHAT, message_id=sent.message_id)

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("done", chat_id=CHAT, message_id=sent.message_id)
    assert fake.calls[-1].failed


async def test_edit_unknown_message(bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=CHAT, message_id=99)


async def test_edit_reply_markup(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "pending", reply_markup=keyboard("a:1"))

    edited = await bot.edit_message_reply_markup(
        chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("a:2")
    )

    assert isinstance(edited, Message)
    assert edited.text == "pending" and edited.reply_markup is not None
    assert edited.reply_markup.inline_keyboard[0][0].callback_data == "a:2"
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=CHAT, message_id=sent.message_id, reply_markup=keyboard("a:2")
        )


async def test_fail_next_server_error_then_recovers(fake: FakeBotAPI, bot: Bot) -> None:
    fake.fail_next("sendMessage")

    with pytest.raises(TelegramServerError):
        await bot.send_message(CHAT, "first")
    sent = await bot.send_message(CHAT, "second")

    assert sent.text == "second"
    assert [call.failed for call in fake.calls] == [True, False]
    assert (await fake.wait_for_call("sendMessage"))["text"] == "second"


async def test_fail_next_retry_after(bot: Bot, fake: FakeBotAPI) -> None:
    fake.fail_next("sendMessage", retry_after=1)

    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CHAT, "hi")

    assert caught.value.retry_after == 1


async def test_wait_for_call_with_where(fake: FakeBotAPI, bot: Bot) -> None:
    async def send_later() -> None:
        await bot.send_message(CHAT, "one")
        await bot.send_message(CHAT, "two")

    task = asyncio.create_task(send_later())
    params = await fake.wait_for_call("sendMessage", where=lambda p: p["text"] == "two")
    await task

    assert params["text"] == "two"


async def test_wait_for_call_times_out_listing_calls(fake: FakeBotAPI, bot: Bot) -> None:
    await bot.get_me()

    with pytest.raises(AssertionError, match="getMe"):
        await fake.wait_for_call("sendMessage", timeout=0.1)


async def test_get_updates_long_poll_wakes_on_push(fake: FakeBotAPI, bot: Bot) -> None:
    async def push_later() -> None:
        await asyncio.sleep(0.2)
        fake.push_update(fake.message_update(from_id=7, chat_id=7, text="/start now"))

    pusher = asyncio.create_task(push_later())
    started = time.monotonic()
    updates = await bot.get_updates(timeout=5)
    await pusher

    assert time.monotonic() - started < 2
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None and message.text == "/start now"
    assert message.entities is not None and message.entities[0].length == len("/start")


async def test_get_updates_empty_after_timeout(bot: Bot) -> None:
    started = time.monotonic()
    assert await bot.get_updates(timeout=1) == []
    assert 0.9 < time.monotonic() - started < 3


async def test_get_updates_offset_confirms(fake: FakeBotAPI, bot: Bot) -> None:
    first = fake.push_update(fake.message_update(from_id=7, chat_id=7, text="a"))
    second = fake.push_update(fake.message_update(from_id=7, chat_id=7, text="b"))

    assert [u.update_id for u in await bot.get_updates()] == [first, second]
    assert [u.update_id for u in await bot.get_updates(offset=second)] == [second]
    assert await bot.get_updates(offset=second + 1) == []
    assert await bot.get_updates() == []


async def test_callback_update_carries_recorded_message(fake: FakeBotAPI, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "pending", reply_markup=keyboard("a:1"))
    fake.push_update(
        fake.callback_update(from_id=7, chat_id=CHAT, message_id=sent.message_id, data="a:1")
    )

    [update] = await bot.get_updates()
    query = update.callback_query
    assert query is not None and query.data == "a:1" and query.from_user.id == 7
    assert query.message is not None and query.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query.id, text="ok")


async def test_builders_validate_as_updates(fake: FakeBotAPI) -> None:
    reply = fake.message_update(from_id=7, chat_id=7, text="why", reply_to_message_id=3)
    press = fake.callback_update(from_id=7, chat_id=7, message_id=3, data="x")

    assert Update.model_validate(reply).message.reply_to_message.message_id == 3  # type: ignore[union-attr]
    assert Update.model_validate(press).callback_query.message.message_id == 3  # type: ignore[union-attr]
    assert press["update_id"] == reply["update_id"] + 1


async def test_webhook(fake: FakeBotAPI, bot: Bot) -> None:
    await bot.set_webhook("https://example.test/hook", secret_token="s3cret")

    assert fake.webhook == {"url": "https://example.test/hook", "secret_token": "s3cret"}
    assert (await bot.get_webhook_info()).url == "https://example.test/hook"
    with pytest.raises(TelegramConflictError):
        await bot.get_updates()
    await bot.delete_webhook()
    assert fake.webhook is None


async def test_unknown_method_is_not_found(bot: Bot) -> None:
    with pytest.raises(TelegramNotFound):
        await bot(UnknownMethod())


async def test_wrong_token_is_unauthorized(fake: FakeBotAPI) -> None:
    bot = make_bot(fake, token="999:wrong")
    try:
        with pytest.raises(TelegramUnauthorizedError):
            await bot.get_me()
    finally:
        await bot.session.close()


async def test_close_answers_pending_get_updates() -> None:
    async with running_fake() as fake:
        bot = make_bot(fake)
        try:
            poll = asyncio.create_task(bot.get_updates(timeout=30))
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await fake.close()
            assert time.monotonic() - started < 1
            assert await poll == []
        finally:
            await bot.session.close()
