"""Requests routed to members reach their linked chats, and their presses act as them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from loopgate.channels.telegram.handlers import NOT_AN_APPROVER, ROLE_CANNOT_ANSWER
from loopgate.commands.base import new_id
from loopgate.events import (
    AnswerRefused,
    DeliveryFailed,
    Meta,
    Option,
    RequestCreated,
    RequestDelivered,
    ResponseReceived,
)
from telegram.helpers import OPERATOR, STRANGER, Shown, TelegramApp

BOB_TG = 5005
CAROL_TG = 6006
DAVE_TG = 7007


def press(tg: TelegramApp, shown: Shown, label: str, from_id: int) -> dict[str, Any]:
    (button,) = [b for b in shown.buttons() if b["text"] == label]
    return tg.fake.callback_update(
        from_id=from_id,
        chat_id=shown.chat_id,
        message_id=shown.message_id,
        data=button["callback_data"],
    )


async def shown_in(tg: TelegramApp, request_id: str, chats: int) -> dict[int, Shown]:
    """The request's messages once it was shown in ``chats`` chats, by chat."""
    deliveries = await tg.wait_for_events(request_id, RequestDelivered, count=chats)
    shown: dict[int, Shown] = {}
    for delivery in deliveries:
        assert isinstance(delivery, RequestDelivered)
        assert delivery.chat_id is not None and delivery.external_message_id is not None
        key = (delivery.chat_id, int(delivery.external_message_id))
        shown[delivery.chat_id] = Shown(*key, tg.fake.messages[key])
    return shown


async def test_bob_links_telegram_and_answers_what_is_routed_to_him_as_himself(
    tg: TelegramApp,
) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.link(bob, BOB_TG)
    await tg.register(telegram_id=None)
    request_id = await tg.ask(
        request_type="confirmation", approvers=["user:bob"], message="Pay invoice 42?"
    )

    shown = await tg.delivered(request_id)
    assert shown.chat_id == BOB_TG
    assert "Pay invoice 42?" in shown.message["text"]
    assert (await tg.post_update(press(tg, shown, "Approve", from_id=BOB_TG))).status == 200

    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert callback["text"] == "Recorded: Approve"
    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.channel) == (bob.user_id, "telegram")
    assert answered.routed_by == "user:bob"
    response = await tg.client.get(f"/v1/requests/{request_id}")
    body = await response.json()
    assert body["decided_by"]["id"] == bob.user_id
    assert body["decided_by"]["channel"] == "telegram"
    assert body["decided_by"]["routed_by"] == "user:bob"
    (record,) = [
        r
        for r in await tg.store.read_stream(f"request-{request_id}")
        if isinstance(r.event, ResponseReceived)
    ]
    assert record.meta.actor == f"telegram:{BOB_TG}"  # the credential that pressed
    await tg.fake.wait_for_call("editMessageText")
    edited = tg.fake.messages[(shown.chat_id, shown.message_id)]
    assert "Approved" in edited["text"] and "by bob" in edited["text"]
    assert "reply_markup" not in edited


async def test_a_request_for_a_group_goes_to_each_linked_member_and_every_message_is_edited(
    tg: TelegramApp,
) -> None:
    alice = await tg.member("alice", role="owner")
    bob, carol = await tg.member("bob"), await tg.member("carol")
    await tg.member("dave")  # not in ops
    await tg.link(bob, BOB_TG)
    await tg.link(carol, CAROL_TG)
    await tg.teams.define_group(alice.actor(), "ops", ["bob", "carol"])
    await tg.register(telegram_id=None)
    request_id = await tg.ask(
        request_type="confirmation", approvers=["group:ops"], message="Restart the database?"
    )

    shown = await shown_in(tg, request_id, chats=2)

    assert sorted(shown) == [BOB_TG, CAROL_TG]
    sent = tg.fake.calls_to("sendMessage")
    assert sorted(m["chat_id"] for m in sent if "Restart" in m["text"]) == [BOB_TG, CAROL_TG]
    await tg.post_update(press(tg, shown[CAROL_TG], "Reject", from_id=CAROL_TG))
    await tg.fake.wait_for_call("editMessageText", count=2)
    for chat in (BOB_TG, CAROL_TG):
        message = tg.fake.messages[(chat, shown[chat].message_id)]
        assert "Rejected" in message["text"] and "by carol" in message["text"]
        assert "reply_markup" not in message
    poll = await tg.poll(request_id)
    assert (poll["status"], poll["approved"]) == ("completed", False)


async def test_an_unlinked_strangers_press_is_refused_and_recorded(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.link(bob, BOB_TG)
    await tg.register(telegram_id=None)
    request_id = await tg.ask(request_type="confirmation", approvers=["user:bob"])
    shown = await tg.delivered(request_id)

    assert (await tg.post_update(press(tg, shown, "Approve", from_id=STRANGER))).status == 200

    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert (callback["text"], callback["show_alert"]) == (NOT_AN_APPROVER, True)
    refused = await tg.wait_for_event(request_id, AnswerRefused)
    assert isinstance(refused, AnswerRefused)
    assert (refused.responder, refused.channel) == (f"telegram:{STRANGER}", "telegram")
    assert refused.reason == "not_an_approver"
    assert (await tg.poll(request_id))["status"] == "pending"


async def test_a_linked_member_the_request_is_not_routed_to_is_refused_as_themselves(
    tg: TelegramApp,
) -> None:
    await tg.member("alice", role="owner")
    bob, dave = await tg.member("bob"), await tg.member("dave")
    await tg.link(bob, BOB_TG)
    await tg.link(dave, DAVE_TG)
    await tg.register(telegram_id=None)
    request_id = await tg.ask(request_type="confirmation", approvers=["user:bob"])
    shown = await tg.delivered(request_id)

    await tg.post_update(press(tg, shown, "Approve", from_id=DAVE_TG))

    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert callback["text"] == NOT_AN_APPROVER
    refused = await tg.wait_for_event(request_id, AnswerRefused)
    assert isinstance(refused, AnswerRefused)
    assert (refused.responder, refused.reason) == (dave.user_id, "not_an_approver")


async def test_a_linked_auditor_cannot_answer_even_when_named(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    erin = await tg.member("erin", role="auditor")
    await tg.link(erin, DAVE_TG)
    await tg.register(telegram_id=None)
    request_id = await tg.ask(request_type="confirmation", approvers=["user:erin"])
    shown = await tg.delivered(request_id)

    await tg.post_update(press(tg, shown, "Approve", from_id=DAVE_TG))

    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert callback["text"] == ROLE_CANNOT_ANSWER
    refused = await tg.wait_for_event(request_id, AnswerRefused)
    assert isinstance(refused, AnswerRefused) and refused.reason == "role_cannot_answer"
    assert (await tg.poll(request_id))["status"] == "pending"


async def test_the_sessions_operator_stays_an_outside_operator_beside_routed_members(
    tg: TelegramApp,
) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.link(bob, BOB_TG)
    await tg.register(telegram_id=OPERATOR)
    request_id = await tg.ask(
        request_type="confirmation", approvers=[f"telegram:{OPERATOR}", "user:bob"]
    )

    shown = await shown_in(tg, request_id, chats=2)

    assert sorted(shown) == sorted([OPERATOR, BOB_TG])
    await tg.post_update(press(tg, shown[OPERATOR], "Approve", from_id=OPERATOR))
    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.routed_by) == (
        f"telegram:{OPERATOR}",
        f"telegram:{OPERATOR}",
    )


async def test_one_chat_refusing_the_message_leaves_the_others_delivered(tg: TelegramApp) -> None:
    alice = await tg.member("alice", role="owner")
    bob, carol = await tg.member("bob"), await tg.member("carol")
    await tg.link(bob, BOB_TG)
    await tg.link(carol, CAROL_TG)
    await tg.teams.define_group(alice.actor(), "ops", ["bob", "carol"])
    await tg.register(telegram_id=None)
    tg.fake.fail_next("sendMessage", error_code=403, description="Forbidden: bot was blocked")

    request_id = await tg.ask(request_type="confirmation", approvers=["group:ops"])

    failed = await tg.wait_for_event(request_id, DeliveryFailed)
    delivered = await tg.wait_for_event(request_id, RequestDelivered)
    assert isinstance(failed, DeliveryFailed) and isinstance(delivered, RequestDelivered)
    assert {failed.chat_id, delivered.chat_id} == {BOB_TG, CAROL_TG}
    assert "blocked" in failed.error
    assert (await tg.poll(request_id))["status"] == "pending"
    history = await (await tg.client.get(f"/v1/requests/{request_id}/history")).json()
    (step,) = [s for s in history["timeline"] if s["type"] == "request.delivery_failed"]
    assert step["summary"].startswith(f"telegram gave up (chat {failed.chat_id}) after 1 attempt")
    assert step["details"]["chat_id"] == failed.chat_id


async def test_a_request_made_before_routing_goes_to_its_sessions_operator_alone(
    tg: TelegramApp,
) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.link(bob, BOB_TG)  # an approver on Telegram: not where an old request is sent
    await tg.register(telegram_id=OPERATOR)
    request_id = new_id()
    old = RequestCreated(  # as written before routing: no approvers
        request_id=request_id,
        session_id="s1",
        client_id="agent",
        message="Written by yesterday's server",
        request_type="confirmation",
        options=(Option(label="Approve"), Option(label="Reject")),
        timeout_seconds=0,
        created_at=datetime.now(UTC),
    )
    await tg.store.append(f"request-{request_id}", 0, [old], Meta(actor="anonymous"))

    shown = await tg.delivered(request_id)

    assert shown.chat_id == OPERATOR
    await tg.post_update(press(tg, shown, "Approve", from_id=STRANGER))
    refused = await tg.wait_for_event(request_id, AnswerRefused)
    assert isinstance(refused, AnswerRefused) and refused.reason == "not_an_approver"
    await tg.post_update(press(tg, shown, "Approve", from_id=OPERATOR))
    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert answered.responder == f"telegram:{OPERATOR}"
    assert [type(e) for e in await tg.events(request_id)].count(RequestDelivered) == 1
    assert [m["chat_id"] for m in tg.fake.calls_to("sendMessage") if "yesterday" in m["text"]] == [
        OPERATOR
    ]


async def test_pending_shows_a_linked_member_what_is_routed_to_them(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    bob, carol = await tg.member("bob"), await tg.member("carol")
    await tg.link(bob, BOB_TG)
    await tg.link(carol, CAROL_TG)
    await tg.register(telegram_id=None)
    for_bob = await tg.ask(request_type="confirmation", approvers=["user:bob"], message="for bob")
    await tg.delivered(for_bob)
    for_carol = await tg.ask(
        request_type="confirmation", approvers=["user:carol"], message="for carol"
    )
    await tg.delivered(for_carol)

    sent_before = len(tg.fake.calls_to("sendMessage"))
    await tg.say(BOB_TG, "/pending")
    await tg.fake.wait_for_call("sendMessage", count=sent_before + 2)

    sent = tg.fake.calls_to("sendMessage")[sent_before:]
    assert [m["chat_id"] for m in sent] == [BOB_TG, BOB_TG]
    assert sent[0]["text"] == "1 request(s) waiting for you:"
    assert "for bob" in sent[1]["text"]


async def test_a_linked_members_typed_reply_is_recorded_as_them(tg: TelegramApp) -> None:
    await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.link(bob, BOB_TG)
    await tg.register(telegram_id=None)
    request_id = await tg.ask(request_type="input", approvers=["user:bob"], message="Branch?")
    shown = await tg.delivered(request_id)

    update = tg.fake.message_update(
        from_id=BOB_TG, chat_id=BOB_TG, text="release/3", reply_to_message_id=shown.message_id
    )
    assert (await tg.post_update(update)).status == 200

    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.text, answered.channel) == (
        bob.user_id,
        "release/3",
        "telegram",
    )


async def test_a_request_naming_nobody_reaches_the_operator_and_every_linked_approver(
    tg: TelegramApp,
) -> None:
    await tg.member("alice", role="owner")
    bob, erin = await tg.member("bob"), await tg.member("erin", role="auditor")
    await tg.link(bob, BOB_TG)
    await tg.link(erin, DAVE_TG)  # an auditor is no approver: nothing is sent to her
    await tg.register(telegram_id=OPERATOR)
    request_id = await tg.ask(request_type="confirmation", message="Default routing?")

    shown = await shown_in(tg, request_id, chats=2)

    assert sorted(shown) == sorted([OPERATOR, BOB_TG])
    sent = [m["chat_id"] for m in tg.fake.calls_to("sendMessage") if "Default" in m["text"]]
    assert sorted(sent) == sorted([OPERATOR, BOB_TG])
