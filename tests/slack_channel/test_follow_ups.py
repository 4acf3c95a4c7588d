"""After the first message: reminders in its thread, the outcome of a cancel, a deleted message.

The scheduler runs on real seconds here: reminders are 1 s away.
"""

from __future__ import annotations

from loopgate.events import ExpiryWarned, ReminderSent, RequestCancelled, VoteCast
from loopgate.web.keys import REQUESTS
from slack_channel.helpers import BOB_SLACK, CAROL_SLACK, SlackApp
from slack_channel.test_answers import four_eyes


async def test_reminders_and_the_expiry_warning_are_replies_in_the_messages_thread(
    sl: SlackApp,
) -> None:
    await sl.member("alice", role="owner")
    await sl.link(await sl.member("bob"), BOB_SLACK)
    await sl.register()
    request_id = await sl.ask(
        approvers=["user:bob"],
        timeout_seconds=30,
        remind_every_seconds=1,
        warn_before_expiry_seconds=29,  # due 1 s after creation, like reminder 1
    )
    posted = (await sl.delivered(request_id))[BOB_SLACK]
    await sl.wait_for_events(request_id, ReminderSent)
    (warned,) = await sl.wait_for_events(request_id, ExpiryWarned)
    assert isinstance(warned, ExpiryWarned)

    def notes() -> list[dict[str, object]]:
        return [c.params for c in sl.fake.succeeded("chat.postMessage") if "thread_ts" in c.params]

    await sl.fake.wait_until(lambda: len(notes()) >= 2)
    epoch = int(warned.expires_at.timestamp())
    shown = f"<!date^{epoch}^{{time}}|{warned.expires_at:%H:%M} UTC>"
    texts = {str(note["text"]) for note in notes()}
    assert f"🔔 Reminder: still waiting for your answer (expires at {shown})." in texts
    assert f"⌛ Expires at {shown}: answer before then, or it is rejected." in texts
    for note in notes():
        assert (note["channel"], note["thread_ts"]) == (posted.channel, posted.ts)


async def test_a_cancelled_request_says_so_and_loses_its_buttons(sl: SlackApp) -> None:
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"])
    posted = (await sl.delivered(request_id))["#ops"]

    response = await sl.client.post("/hitl/cancel", json={"request_id": request_id})
    assert response.status == 200, await response.text()
    await sl.wait_for_event(request_id, RequestCancelled)

    await sl.fake.wait_until(
        lambda: "Cancelled" in sl.fake.messages[(posted.channel, posted.ts)].all_text()
    )
    assert sl.fake.message(posted.channel, posted.ts).buttons() == []


async def test_a_message_deleted_in_slack_is_left_alone_and_the_others_edited(
    sl: SlackApp,
) -> None:
    view = await four_eyes(sl)
    shown = await sl.delivered(view.request_id, count=2)
    gone = shown[CAROL_SLACK]
    del sl.fake.messages[(gone.channel, gone.ts)]  # carol deleted her copy

    await sl.click(shown[BOB_SLACK], "Approve", BOB_SLACK)
    await sl.wait_for_event(view.request_id, VoteCast)

    kept = shown[BOB_SLACK]
    await sl.fake.wait_until(
        lambda: "1 of 2 approvals" in sl.fake.messages[(kept.channel, kept.ts)].all_text()
    )
    await sl.fake.wait_until(
        lambda: any(c.error == "message_not_found" for c in sl.fake.calls_to("chat.update"))
    )
    failed = [c for c in sl.fake.calls_to("chat.update") if c.error == "message_not_found"]
    assert len(failed) == 1  # dropped, not retried
    assert not (await sl.client.app[REQUESTS].find_request(view.request_id)).final
