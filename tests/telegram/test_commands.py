"""The bot's commands: /start, /pending, /status, and messages it cannot use."""

from __future__ import annotations

from loopgate.channels.telegram.handlers import HOW_TO_ANSWER
from loopgate.events import RequestDelivered
from telegram.helpers import OPERATOR, STRANGER, TelegramApp


async def command(tg: TelegramApp, text: str, from_id: int = OPERATOR) -> None:
    update = tg.fake.message_update(from_id=from_id, chat_id=from_id, text=text)
    assert (await tg.post_update(update)).status == 200


async def test_start_tells_the_user_their_id(tg: TelegramApp) -> None:
    await command(tg, "/start", from_id=4242)
    (answer,) = tg.fake.calls_to("sendMessage")
    assert answer["chat_id"] == 4242
    assert "<code>4242</code>" in answer["text"]
    assert '"telegram_id": 4242' in answer["text"]


async def test_pending_shows_the_operators_open_requests_again_with_buttons(
    tg: TelegramApp,
) -> None:
    await tg.register("mine")
    await tg.register("theirs", telegram_id=STRANGER)
    first = await tg.ask("mine", request_type="confirmation", message="first")
    await tg.delivered(first)
    decided = await tg.ask("mine", request_type="confirmation", message="decided")
    await tg.delivered(decided)
    await tg.client.post(f"/v1/requests/{decided}/response", json={"option": "Approve"})
    other = await tg.ask("theirs", message="not yours")
    await tg.delivered(other)
    sent_before = len(tg.fake.calls_to("sendMessage"))

    await command(tg, "/pending")

    sent = tg.fake.calls_to("sendMessage")[sent_before:]
    assert [m["chat_id"] for m in sent] == [OPERATOR, OPERATOR]
    assert sent[0]["text"] == "1 request(s) waiting for you:"
    assert "first" in sent[1]["text"] and sent[1]["reply_markup"]["inline_keyboard"]
    deliveries = [e for e in await tg.events(first) if isinstance(e, RequestDelivered)]
    assert len(deliveries) == 2  # each message is recorded, so a reply to either works


async def test_pending_with_nothing_waiting(tg: TelegramApp) -> None:
    await command(tg, "/pending")
    (answer,) = tg.fake.calls_to("sendMessage")
    assert answer["text"].startswith("Nothing is waiting for you")


async def test_status_counts_the_operators_sessions_and_requests(tg: TelegramApp) -> None:
    await tg.register("a")
    await tg.register("b")
    for session in ("a", "a", "b"):
        await tg.delivered(await tg.ask(session))
    await command(tg, "/status")
    answer = tg.fake.calls_to("sendMessage")[-1]
    assert "Active sessions you operate: 2" in answer["text"]
    assert "Requests waiting for you: 3" in answer["text"]


async def test_a_message_that_answers_nothing_gets_directions(tg: TelegramApp) -> None:
    await command(tg, "hello?")
    (answer,) = tg.fake.calls_to("sendMessage")
    assert answer["text"] == HOW_TO_ANSWER
