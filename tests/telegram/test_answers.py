"""Answers from Telegram: only the operator decides; replies, repeats and stale presses."""

from __future__ import annotations

from typing import Any

from loopgate.channels.telegram.handlers import INVALID_BUTTON, NOT_AN_APPROVER
from loopgate.events import (
    AnswerRefused,
    RequestCreated,
    RequestDelivered,
    ResponseReceived,
)
from telegram.helpers import OPERATOR, STRANGER, Shown, TelegramApp


def press(tg: TelegramApp, shown: Shown, label: str, from_id: int = OPERATOR) -> dict[str, Any]:
    (button,) = [b for b in shown.buttons() if b["text"] == label]
    return tg.fake.callback_update(
        from_id=from_id,
        chat_id=shown.chat_id,
        message_id=shown.message_id,
        data=button["callback_data"],
    )


def reply(tg: TelegramApp, shown: Shown, text: str, from_id: int = OPERATOR) -> dict[str, Any]:
    return tg.fake.message_update(
        from_id=from_id, chat_id=shown.chat_id, text=text, reply_to_message_id=shown.message_id
    )


async def test_the_operators_press_decides_and_the_message_says_so(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation", message="Deploy v2.1?")
    shown = await tg.delivered(request_id)

    response = await tg.post_update(press(tg, shown, "Approve"))

    assert response.status == 200
    poll = await tg.poll(request_id)
    assert (poll["status"], poll["approved"], poll["response"]) == ("completed", True, "Approve")
    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.channel) == (f"telegram:{OPERATOR}", "telegram")
    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert callback["text"] == "Recorded: Approve"
    edit = await tg.fake.wait_for_call("editMessageText")
    assert (edit["chat_id"], edit["message_id"]) == (shown.chat_id, shown.message_id)
    message = tg.fake.messages[(shown.chat_id, shown.message_id)]
    assert "Deploy v2.1?" in message["text"] and "Approved" in message["text"]
    assert f"telegram:{OPERATOR}" in message["text"]
    assert "reply_markup" not in message  # the buttons are gone


async def test_a_strangers_press_is_refused_and_recorded(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)

    assert (await tg.post_update(press(tg, shown, "Approve", from_id=STRANGER))).status == 200

    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert (callback["text"], callback["show_alert"]) == (NOT_AN_APPROVER, True)
    assert (await tg.poll(request_id))["status"] == "pending"
    refused = await tg.wait_for_event(request_id, AnswerRefused)
    assert isinstance(refused, AnswerRefused)
    assert (refused.responder, refused.channel) == (f"telegram:{STRANGER}", "telegram")
    # The operator can still answer.
    await tg.post_update(press(tg, shown, "Reject"))
    poll = await tg.poll(request_id)
    assert (poll["status"], poll["approved"], poll["response"]) == ("completed", False, "Reject")


async def test_a_forged_button_is_refused_and_changes_nothing(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)
    data = shown.buttons()[1]["callback_data"]
    prefix, ref, _, tag = data.split(".")
    for forged in (f"{prefix}.{ref}.0.{tag}", data[:-2] + "AA", "a.nonsense", "delete-everything"):
        update = tg.fake.callback_update(
            from_id=OPERATOR, chat_id=shown.chat_id, message_id=shown.message_id, data=forged
        )
        assert (await tg.post_update(update)).status == 200
    callbacks = tg.fake.calls_to("answerCallbackQuery")
    assert [c["text"] for c in callbacks] == [INVALID_BUTTON] * 4
    assert await tg.event_types(request_id) == [RequestCreated, RequestDelivered]


async def test_an_open_question_is_answered_by_replying_to_its_message(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="input", message="Which branch?")
    shown = await tg.delivered(request_id)

    assert (await tg.post_update(reply(tg, shown, "release/2.1"))).status == 200

    poll = await tg.poll(request_id)
    assert (poll["status"], poll["response"]) == ("completed", "release/2.1")
    confirmation = await tg.fake.wait_for_call("sendMessage", count=2)
    assert confirmation["text"].startswith("Recorded")
    assert confirmation["reply_parameters"]["message_id"] > shown.message_id


async def test_a_reply_is_matched_by_the_message_it_replies_to(tg: TelegramApp) -> None:
    await tg.register()
    first = await tg.ask(request_type="input", message="First question?")
    first_shown = await tg.delivered(first)
    second = await tg.ask(request_type="input", message="Second question?")
    await tg.delivered(second)
    # The text mentions the second question; the reply is to the first message.
    await tg.post_update(reply(tg, first_shown, "Second question? yes"))
    assert (await tg.poll(first))["status"] == "completed"
    assert (await tg.poll(second))["status"] == "pending"


async def test_a_reply_to_something_else_answers_nothing(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="input")
    await tg.delivered(request_id)
    update = tg.fake.message_update(
        from_id=OPERATOR, chat_id=OPERATOR, text="yes", reply_to_message_id=999
    )
    await tg.post_update(update)
    answer = await tg.fake.wait_for_call("sendMessage", count=2)
    assert "not a request" in answer["text"]
    assert (await tg.poll(request_id))["status"] == "pending"


async def test_a_strangers_reply_is_refused(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="input")
    shown = await tg.delivered(request_id)
    await tg.post_update(reply(tg, shown, "ship it", from_id=STRANGER))
    answer = await tg.fake.wait_for_call("sendMessage", count=2)
    assert answer["text"] == NOT_AN_APPROVER
    assert (await tg.poll(request_id))["status"] == "pending"
    assert AnswerRefused in await tg.event_types(request_id)


async def test_typing_a_buttons_label_counts_as_pressing_it(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)
    await tg.post_update(reply(tg, shown, " reject "))
    poll = await tg.poll(request_id)
    assert (poll["status"], poll["approved"], poll["response"]) == ("completed", False, "Reject")


async def test_free_text_on_a_buttons_only_request_says_which_buttons(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="choice", options=[{"label": "Blue"}, {"label": "Red"}])
    shown = await tg.delivered(request_id)
    await tg.post_update(reply(tg, shown, "green please"))
    answer = await tg.fake.wait_for_call("sendMessage", count=2)
    assert answer["text"] == "This request takes one of its buttons: Blue, Red."
    assert (await tg.poll(request_id))["status"] == "pending"


async def test_the_same_update_twice_is_handled_once(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation")
    shown = await tg.delivered(request_id)
    stranger = press(tg, shown, "Approve", from_id=STRANGER)
    operator = press(tg, shown, "Reject")
    for update in (stranger, stranger, operator, operator):
        assert (await tg.post_update(update)).status == 200
    await tg.fake.wait_for_call("editMessageText")
    assert len(tg.fake.calls_to("answerCallbackQuery")) == 2
    assert await tg.event_types(request_id) == [
        RequestCreated,
        RequestDelivered,
        AnswerRefused,
        ResponseReceived,
    ]


async def test_a_press_after_an_answer_from_elsewhere_explains_and_fixes_the_message(
    tg: TelegramApp,
) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation", message="Ship?")
    shown = await tg.delivered(request_id)
    answered = await tg.client.post(
        f"/v1/requests/{request_id}/response", json={"option": "Reject"}
    )
    assert answered.status == 200, await answered.text()
    await tg.fake.wait_for_call("editMessageText")  # the sender shows the outcome

    await tg.post_update(press(tg, shown, "Approve"))

    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert callback["text"] == "This request was already answered: Reject."
    poll = await tg.poll(request_id)
    assert (poll["approved"], poll["response"]) == (False, "Reject")
    assert "Rejected" in tg.fake.messages[(shown.chat_id, shown.message_id)]["text"]


async def test_cancelled_and_expired_requests_are_shown_as_such(tg: TelegramApp) -> None:
    await tg.register()
    cancelled = await tg.ask(request_type="confirmation", message="Cancel me")
    cancelled_shown = await tg.delivered(cancelled)
    expiring = await tg.ask(request_type="confirmation", message="Let me lapse", timeout_seconds=1)
    expiring_shown = await tg.delivered(expiring)
    assert (await tg.client.post("/hitl/cancel", json={"request_id": cancelled})).status == 200

    await tg.fake.wait_for_call("editMessageText", count=2, timeout=5)

    cancelled_text = tg.fake.messages[(OPERATOR, cancelled_shown.message_id)]["text"]
    expired_text = tg.fake.messages[(OPERATOR, expiring_shown.message_id)]["text"]
    assert "Cancelled" in cancelled_text and "Cancel me" in cancelled_text
    assert "Expired" in expired_text and "(rejected)" in expired_text
    await tg.post_update(press(tg, cancelled_shown, "Approve"))
    await tg.post_update(press(tg, expiring_shown, "Approve"))
    texts = [c["text"] for c in tg.fake.calls_to("answerCallbackQuery")]
    assert texts == ["This request was cancelled by the agent.", "This request has expired."]


async def test_the_history_shows_what_the_operator_saw_and_who_answered(tg: TelegramApp) -> None:
    await tg.register()
    request_id = await tg.ask(request_type="confirmation", message="Wire <$1.5M> & close?")
    shown = await tg.delivered(request_id)
    await tg.post_update(press(tg, shown, "Reject", from_id=STRANGER))
    await tg.post_update(press(tg, shown, "Approve"))

    response = await tg.client.get(f"/v1/requests/{request_id}/history")
    timeline = (await response.json())["timeline"]

    assert [step["type"] for step in timeline] == [
        "request.created",
        "request.delivered",
        "request.answer_refused",
        "request.response_received",
    ]
    delivered = timeline[1]
    assert (
        delivered["summary"] == f"shown on telegram (chat {OPERATOR}, message {shown.message_id})"
    )
    assert delivered["details"]["shown_text"] == shown.message["text"]  # exactly what was sent
    assert delivered["details"]["shown_options"] == ["Approve", "Reject"]
    assert timeline[2]["summary"].startswith(f"telegram:{STRANGER} tried to answer on telegram")
    assert timeline[3]["summary"] == f"telegram:{OPERATOR} answered 'Approve' on telegram: approved"
