"""Escalation, reminders and expiry warnings on Telegram, through the app and the fake Bot API.

The scheduler runs on real seconds here: steps and reminders are 1-2 s away.
"""

from __future__ import annotations

from typing import Any

from waiting import eventually

from loopgate.events import (
    EscalationStep,
    ExpiryWarned,
    ReminderSent,
    RequestDelivered,
    RequestEscalated,
    ResponseReceived,
)
from loopgate.teams import Membership
from loopgate.web.keys import REQUESTS, SCHEDULER, SESSIONS
from telegram.conftest import AppFactory
from telegram.helpers import TelegramApp
from telegram.test_routing import BOB_TG, CAROL_TG, press, shown_in

LEAD_TG = CAROL_TG


async def ask_as(tg: TelegramApp, member: Membership, **fields: Any) -> str:
    """A request made by ``member`` through the app's command handlers (see tests/web)."""
    actor = member.actor()
    await tg.client.app[SESSIONS].register_session("s1", "agent", None, actor)
    view, _ = await tg.client.app[REQUESTS].create_request(
        session_id="s1",
        client_id="agent",
        message="Drop the staging database?",
        request_type="confirmation",
        actor=actor,
        **({"timeout_seconds": 60} | fields),
    )
    return view.request_id


def sent_to(tg: TelegramApp, chat_id: int, text: str) -> list[dict[str, Any]]:
    return [
        m for m in tg.fake.calls_to("sendMessage") if m["chat_id"] == chat_id and text in m["text"]
    ]


async def test_a_step_reaches_a_linked_lead_who_answers_and_a_restart_escalates_once(
    tg_app: AppFactory,
) -> None:
    tg = await tg_app()
    alice = await tg.member("alice", role="owner")
    bob, lead = await tg.member("bob"), await tg.member("lead")
    await tg.link(bob, BOB_TG)
    await tg.link(lead, LEAD_TG)
    await tg.teams.define_group(alice.actor(), "leads", ["lead", "bob"])
    request_id = await ask_as(
        tg,
        alice,
        approvers=["user:bob"],
        escalation=[EscalationStep(after_seconds=2, approvers=("group:leads",))],
    )
    await tg.delivered(request_id)
    assert sent_to(tg, LEAD_TG, "staging") == []

    await tg.client.close()  # the server stops before the step is due...
    assert RequestEscalated not in await tg.event_types(request_id), "too slow a run"
    tg = await tg_app()  # ...and a new one starts over the same store

    shown = await shown_in(tg, request_id, chats=2)
    assert sorted(shown) == [BOB_TG, LEAD_TG]
    assert len(sent_to(tg, LEAD_TG, "staging")) == 1
    assert len(sent_to(tg, BOB_TG, "staging")) == 1  # in leads too, and shown already
    await tg.post_update(press(tg, shown[LEAD_TG], "Approve", from_id=LEAD_TG))

    answered = await tg.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.routed_by) == (lead.user_id, "group:leads")
    types = await tg.event_types(request_id)
    assert types.count(RequestEscalated) == 1
    assert types.count(RequestDelivered) == 2
    scheduler = tg.client.app[SCHEDULER]
    await eventually(lambda: scheduler.armed == 0)
    await tg.fake.wait_for_call("editMessageText", count=2)
    for chat, message in shown.items():
        edited = tg.fake.messages[(chat, message.message_id)]
        assert "Approved" in edited["text"] and "by lead" in edited["text"]


async def test_reminders_and_the_expiry_warning_reply_to_the_requests_message(
    tg: TelegramApp,
) -> None:
    alice = await tg.member("alice", role="owner")
    bob = await tg.member("bob")
    await tg.link(bob, BOB_TG)
    request_id = await ask_as(
        tg,
        alice,
        approvers=["user:bob"],
        timeout_seconds=30,
        remind_every_seconds=1,
        warn_before_expiry_seconds=29,  # due 1 s after creation, like reminder 1
    )
    shown = await tg.delivered(request_id)

    await tg.wait_for_events(request_id, ReminderSent, count=1)
    (warned,) = await tg.wait_for_events(request_id, ExpiryWarned, count=1)
    assert isinstance(warned, ExpiryWarned)
    reminder = await tg.fake.wait_for_call(
        "sendMessage", where=lambda m: m["text"].startswith("🔔 Reminder")
    )
    warning = await tg.fake.wait_for_call("sendMessage", where=lambda m: m["text"].startswith("⌛"))

    at = warned.expires_at.strftime("%H:%M")
    assert reminder["text"] == f"🔔 Reminder: still waiting for your answer (expires at {at} UTC)."
    assert warning["text"] == f"⌛ Expires at {at} UTC: answer before then, or it is rejected."
    for note in (reminder, warning):
        assert note["chat_id"] == BOB_TG
        assert note["reply_parameters"]["message_id"] == shown.message_id

    await tg.post_update(press(tg, shown, "Reject", from_id=BOB_TG))
    await tg.wait_for_event(request_id, ResponseReceived)
    scheduler = tg.client.app[SCHEDULER]
    await eventually(lambda: scheduler.armed_for(request_id) == set())
