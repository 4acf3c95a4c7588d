"""The sender: a request reaches its operator's chat, with the right buttons, once."""

from __future__ import annotations

import asyncio
import time

from waiting import eventually

from loopgate.channels.telegram.callbacks import CallbackSigner
from loopgate.channels.telegram.sender import NAME
from loopgate.events import DeliveryFailed, RequestCreated, RequestDelivered
from loopgate.web.keys import METRICS
from telegram.conftest import AppFactory
from telegram.fake_bot_api import TEST_TOKEN
from telegram.helpers import OPERATOR, TelegramApp


async def test_a_confirmation_reaches_the_operator_with_approve_and_reject(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation", message="Deploy v2.1 to production?")
    shown = await tg.delivered(request_id)
    assert shown.chat_id == OPERATOR
    assert "Deploy v2.1 to production?" in shown.message["text"]
    assert shown.message["parse_mode"] == "HTML"
    assert [b["text"] for b in shown.buttons()] == ["Approve", "Reject"]
    signer = CallbackSigner.for_bot_token(TEST_TOKEN)
    assert [signer.verify(b["callback_data"]) for b in shown.buttons()] == [
        (request_id, 0),
        (request_id, 1),
    ]
    assert all(len(b["callback_data"].encode()) <= 64 for b in shown.buttons())
    assert await tg.event_types(request_id) == [RequestCreated, RequestDelivered]
    assert (await tg.poll(request_id))["status"] == "pending"


async def test_a_choice_gets_one_button_per_option(tg: TelegramApp) -> None:
    await tg.register()
    labels = ["Blue", "Green", "A much longer label than the others"]
    request_id = await tg.ask(request_type="choice", options=[{"label": x} for x in labels])
    shown = await tg.delivered(request_id)
    assert [b["text"] for b in shown.buttons()] == labels
    rows = shown.message["reply_markup"]["inline_keyboard"]
    assert [len(row) for row in rows] == [2, 1]  # short labels share a row


async def test_an_open_question_asks_for_a_reply(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="input", message="Which branch?")
    shown = await tg.delivered(request_id)
    assert "reply_markup" not in shown.message  # Telegram echoes inline keyboards only
    (sent,) = tg.fake.calls_to("sendMessage")
    assert sent["reply_markup"]["force_reply"] is True
    assert "Reply to this message" in sent["text"]


async def test_user_strings_show_verbatim(tg: TelegramApp) -> None:
    await tg.register()
    message = "Run `rm -rf <dir>` & merge *all* of feature_x [now]?"
    request_id = await tg.ask(
        message=message,
        request_type="choice",
        options=[{"label": "<b>yes</b> & *go*"}, {"label": "_no_ [stop]"}],
        metadata={"pr<1>": "a & b", "branch": "feat_x*[wip]"},
    )
    shown = await tg.delivered(request_id)
    text = shown.message["text"]
    assert "Run `rm -rf &lt;dir&gt;` &amp; merge *all* of feature_x [now]?" in text
    assert "<i>pr&lt;1&gt;</i>: a &amp; b" in text
    assert "feat_x*[wip]" in text
    assert "<dir>" not in text and " & " not in text
    # Buttons are plain text, never parsed: labels go as they are.
    assert [b["text"] for b in shown.buttons()] == ["<b>yes</b> & *go*", "_no_ [stop]"]


async def test_sessions_without_a_telegram_operator_send_nothing(tg: TelegramApp) -> None:
    await tg.register("s1", telegram_id=None)
    await tg.register("s2", telegram_id=OPERATOR)
    quiet = await tg.ask("s1", message="nobody on Telegram")
    loud = await tg.ask("s2", message="the operator is on Telegram")
    await tg.delivered(loud)
    assert await tg.event_types(quiet) == [RequestCreated]
    assert ["nobody" in call["text"] for call in tg.fake.calls_to("sendMessage")] == [False]


async def test_a_failed_send_is_retried(tg: TelegramApp) -> None:
    tg.fake.fail_next("sendMessage", times=2, error_code=500)
    await tg.register()
    request_id = await tg.ask()
    await tg.delivered(request_id)
    assert [call.failed for call in tg.fake.calls if call.method == "sendMessage"] == [
        True,
        True,
        False,
    ]
    assert await tg.event_types(request_id) == [RequestCreated, RequestDelivered]


async def test_sends_and_failed_attempts_are_counted_for_telegram(tg: TelegramApp) -> None:
    tg.fake.fail_next("sendMessage", times=2, error_code=500)
    await tg.register()
    await tg.delivered(await tg.ask())
    registry = tg.client.server.app[METRICS].registry

    def counted(name: str) -> float | None:
        return registry.get_sample_value(name, {"channel": "telegram"})

    await eventually(lambda: counted("loopgate_deliveries_total") == 1)
    assert counted("loopgate_delivery_failures_total") == 2
    assert registry.get_sample_value("loopgate_reactor_lag_events", {"reactor": NAME}) is not None


async def test_telegram_asking_to_slow_down_is_obeyed(tg: TelegramApp) -> None:
    # retry_seconds is 0.05 in tests: only retry_after explains a wait of a second.
    tg.fake.fail_next("sendMessage", retry_after=1)
    await tg.register()
    started = time.monotonic()
    request_id = await tg.ask()
    await tg.delivered(request_id)
    assert time.monotonic() - started >= 1.0
    assert [call.failed for call in tg.fake.calls if call.method == "sendMessage"] == [True, False]


async def test_after_the_last_attempt_the_failure_is_recorded_and_the_request_stays_open(
    tg: TelegramApp,
) -> None:
    tg.fake.fail_next("sendMessage", times=3, error_code=502, description="Bad Gateway")
    await tg.register()
    request_id = await tg.ask()
    failure = await tg.wait_for_event(request_id, DeliveryFailed)
    assert isinstance(failure, DeliveryFailed)
    assert (failure.channel, failure.attempts) == ("telegram", 3)
    assert "Bad Gateway" in failure.error
    assert (await tg.poll(request_id))["status"] == "pending"
    await asyncio.sleep(0.3)  # no fourth attempt comes
    assert [call.failed for call in tg.fake.calls if call.method == "sendMessage"] == [True] * 3


async def test_a_chat_telegram_refuses_is_not_retried(tg: TelegramApp) -> None:
    tg.fake.fail_next("sendMessage", error_code=400, description="Bad Request: chat not found")
    await tg.register()
    request_id = await tg.ask()
    failure = await tg.wait_for_event(request_id, DeliveryFailed)
    assert isinstance(failure, DeliveryFailed) and failure.attempts == 1
    assert "chat not found" in failure.error


async def test_a_request_waiting_for_a_retry_holds_up_neither_creation_nor_other_requests(
    tg_app: AppFactory,
) -> None:
    tg = await tg_app()
    tg.fake.fail_next("sendMessage", retry_after=30)
    await tg.register("s1")
    await tg.register("s2", telegram_id=OPERATOR + 1)
    stuck = await tg.ask("s1", message="first")
    await tg.fake.wait_for_call("sendMessage", failed=True)  # now waiting 30 s to retry
    moving = await tg.ask("s2", message="second")
    shown = await tg.delivered(moving)
    assert shown.chat_id == OPERATOR + 1
    assert await tg.event_types(stuck) == [RequestCreated]
