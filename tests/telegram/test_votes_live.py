"""A quorum request on Telegram: every approver's message follows the votes as they come."""

from __future__ import annotations

import copy

from loopgate.channels.telegram.handlers import (
    ALREADY_VOTED,
    NOT_AN_APPROVER,
    REQUESTER_CANNOT_APPROVE,
    explain,
)
from loopgate.errors import Conflict, Forbidden
from loopgate.events import ResponseReceived, VoteCast
from loopgate.teams import Membership
from loopgate.views import RequestView
from loopgate.web.keys import REQUESTS
from telegram.helpers import Shown, TelegramApp
from telegram.test_routing import BOB_TG, CAROL_TG, press, shown_in


async def four_eyes(tg: TelegramApp, **fields: object) -> tuple[Membership, RequestView]:
    """Bob and Carol, linked and in ``finance``; a request to finance that needs both."""
    alice = await tg.member("alice", role="owner")
    await tg.link(await tg.member("bob"), BOB_TG)
    await tg.link(await tg.member("carol"), CAROL_TG)
    await tg.teams.define_group(alice.actor(), "finance", ["bob", "carol"])
    await tg.register(telegram_id=None)
    view, _ = await tg.client.app[REQUESTS].create_request(
        session_id="s1",
        client_id="agent",
        message="Pay invoice 42?",
        request_type="confirmation",
        approvers=["group:finance"],
        quorum=2,
        actor=alice.actor(answers=False),
        **fields,  # type: ignore[arg-type]
    )
    return alice, view


async def first_shown(tg: TelegramApp, request_id: str) -> dict[int, Shown]:
    """Both approvers' messages as first sent (their buttons pressed later, once edited)."""
    shown = await shown_in(tg, request_id, chats=2)
    return {chat: s._replace(message=copy.deepcopy(s.message)) for chat, s in shown.items()}


def text_in(tg: TelegramApp, chat: int, message_id: int) -> str:
    text: str = tg.fake.messages[(chat, message_id)]["text"]
    return text


async def test_each_vote_edits_every_approvers_message_and_the_decision_lists_the_votes(
    tg: TelegramApp,
) -> None:
    _, view = await four_eyes(tg)
    shown = await first_shown(tg, view.request_id)
    for chat in (BOB_TG, CAROL_TG):
        assert "0 of 2 approvals" in shown[chat].message["text"]

    await tg.post_update(press(tg, shown[BOB_TG], "Approve", from_id=BOB_TG))
    callback = await tg.fake.wait_for_call("answerCallbackQuery")
    assert callback["text"] == "Recorded: Approve (1 of 2 approvals so far)"
    await tg.wait_for_event(view.request_id, VoteCast)
    await tg.fake.wait_for_call("editMessageText", count=2)
    for chat in (BOB_TG, CAROL_TG):
        text = text_in(tg, chat, shown[chat].message_id)
        assert "1 of 2 approvals — bob ✅" in text
        # Still open: the others' buttons stay.
        now = Shown(chat, shown[chat].message_id, tg.fake.messages[(chat, shown[chat].message_id)])
        assert [b["text"] for b in now.buttons()] == ["Approve", "Reject"]

    await tg.post_update(press(tg, shown[CAROL_TG], "Approve", from_id=CAROL_TG))
    callback = await tg.fake.wait_for_call("answerCallbackQuery", count=2)
    assert callback["text"] == "Recorded: Approve"
    decided = await tg.wait_for_event(view.request_id, ResponseReceived)
    assert isinstance(decided, ResponseReceived) and decided.approved
    assert len(decided.votes) == 2
    await tg.fake.wait_for_call("editMessageText", count=4)
    for chat in (BOB_TG, CAROL_TG):
        message = tg.fake.messages[(chat, shown[chat].message_id)]
        assert "Approved" in message["text"] and "by carol" in message["text"]
        assert "Votes: bob ✅, carol ✅" in message["text"]
        assert "reply_markup" not in message

    # A press on the decided request by one who voted already: refused, nothing appended.
    before = await tg.event_types(view.request_id)
    await tg.post_update(press(tg, shown[BOB_TG], "Reject", from_id=BOB_TG))
    callback = await tg.fake.wait_for_call("answerCallbackQuery", count=3)
    assert callback["text"] == "This request was already answered: Approve."
    assert await tg.event_types(view.request_id) == before


async def test_a_member_who_voted_is_told_so_and_their_second_press_changes_nothing(
    tg: TelegramApp,
) -> None:
    _, view = await four_eyes(tg)
    shown = await first_shown(tg, view.request_id)
    await tg.post_update(press(tg, shown[BOB_TG], "Approve", from_id=BOB_TG))
    await tg.wait_for_event(view.request_id, VoteCast)
    await tg.fake.wait_for_call("answerCallbackQuery")
    before = await tg.event_types(view.request_id)

    await tg.post_update(press(tg, shown[BOB_TG], "Reject", from_id=BOB_TG))

    callback = await tg.fake.wait_for_call("answerCallbackQuery", count=2)
    assert callback["text"] == ALREADY_VOTED and callback["show_alert"] is True
    assert await tg.event_types(view.request_id) == before
    found = await tg.client.app[REQUESTS].find_request(view.request_id)
    assert (found.status, found.approvals) == ("delivered", 1)


async def test_a_rejecting_vote_decides_at_once_and_the_message_lists_it(tg: TelegramApp) -> None:
    _, view = await four_eyes(tg)
    shown = await first_shown(tg, view.request_id)

    await tg.post_update(press(tg, shown[CAROL_TG], "Reject", from_id=CAROL_TG))

    await tg.wait_for_event(view.request_id, ResponseReceived)
    await tg.fake.wait_for_call("editMessageText", count=2)
    for chat in (BOB_TG, CAROL_TG):
        text = text_in(tg, chat, shown[chat].message_id)
        assert "Rejected" in text and "Votes: carol ❌" in text


def test_each_refusal_of_a_vote_is_explained_in_the_chat() -> None:
    assert explain(Conflict("u voted", code="already_voted"), None) == ALREADY_VOTED
    requester = Forbidden("the requester cannot approve", code="requester_cannot_approve")
    assert explain(requester, None) == REQUESTER_CANNOT_APPROVE
    assert explain(Forbidden("no", code="not_an_approver"), None) == NOT_AN_APPROVER
