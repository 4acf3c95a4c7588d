"""Clicks on Slack buttons answer as the linked member; everyone else is refused, politely."""

from __future__ import annotations

import pytest

from loopgate.channels.answering import ALREADY_VOTED
from loopgate.channels.slack.app import INVALID_BUTTON, NOT_AN_APPROVER
from loopgate.events import AnswerRefused, ResponseReceived, VoteCast
from loopgate.teams import Membership
from loopgate.views import RequestView
from loopgate.web.keys import REQUESTS
from slack_channel.fake_slack_api import BOT_TOKEN
from slack_channel.helpers import (
    BOB_SLACK,
    CAROL_SLACK,
    SIGNING_SECRET,
    STRANGER_SLACK,
    SlackApp,
    click_payload,
    interaction_body,
)


async def routed_to_bob(sl: SlackApp) -> tuple[Membership, str]:
    await sl.member("alice", role="owner")
    bob = await sl.link(await sl.member("bob"), BOB_SLACK)
    await sl.register()
    return bob, await sl.ask(approvers=["user:bob"], message="Pay invoice 42?")


async def test_bob_approves_by_click_the_decision_is_his_and_the_message_shows_it(
    sl: SlackApp, capsys: pytest.CaptureFixture[str]
) -> None:
    bob, request_id = await routed_to_bob(sl)
    posted = (await sl.delivered(request_id))[BOB_SLACK]

    response = await sl.click(posted, "Approve", BOB_SLACK)
    assert await response.text() == ""  # acknowledged at once; the answer follows

    answered = await sl.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.channel) == (bob.user_id, "slack")
    body = await (await sl.client.get(f"/v1/requests/{request_id}")).json()
    assert body["decided_by"]["id"] == bob.user_id
    assert body["decided_by"]["channel"] == "slack"
    (record,) = [
        r
        for r in await sl.store.read_stream(f"request-{request_id}")
        if isinstance(r.event, ResponseReceived)
    ]
    assert record.meta.actor == f"slack:{BOB_SLACK}"
    await sl.fake.wait_until(
        lambda: "Approved" in sl.fake.messages[(posted.channel, posted.ts)].all_text()
    )
    edited = sl.fake.message(posted.channel, posted.ts)
    assert edited.buttons() == []
    assert "“Approve” by bob" in edited.all_text()
    assert sl.fake.calls_to("chat.postEphemeral") == []  # taken: nothing more to say

    await sl.click(posted, "Reject", BOB_SLACK)  # a stale copy clicked again
    (note,) = await sl.fake.wait_for("chat.postEphemeral")
    assert note.params["text"] == "This request was already answered: Approve."
    events = await sl.events(request_id)
    assert sum(isinstance(e, ResponseReceived) for e in events) == 1
    logged = capsys.readouterr()
    assert "slack answer" in logged.out  # the logs were seen
    for secret in (BOT_TOKEN, SIGNING_SECRET):  # the whole flow's logs hold neither
        assert secret not in logged.out + logged.err


async def test_a_click_from_an_unlinked_slack_user_is_refused_and_recorded(sl: SlackApp) -> None:
    _, request_id = await routed_to_bob(sl)
    posted = (await sl.delivered(request_id))[BOB_SLACK]

    await sl.click(posted, "Approve", STRANGER_SLACK)

    (note,) = await sl.fake.wait_for("chat.postEphemeral")
    assert note.params["user"] == STRANGER_SLACK
    assert note.params["channel"] == posted.channel
    assert note.params["text"] == NOT_AN_APPROVER
    assert note.params["text"].startswith("Not yours to answer")
    refused = await sl.wait_for_event(request_id, AnswerRefused)
    assert isinstance(refused, AnswerRefused) and refused.reason == "not_an_approver"
    view = await sl.client.app[REQUESTS].find_request(request_id)
    assert not view.final


async def test_a_linked_member_the_request_is_not_routed_to_is_refused(sl: SlackApp) -> None:
    _, request_id = await routed_to_bob(sl)
    await sl.link(await sl.member("carol"), CAROL_SLACK)
    posted = (await sl.delivered(request_id))[BOB_SLACK]

    await sl.click(posted, "Approve", CAROL_SLACK)

    (note,) = await sl.fake.wait_for("chat.postEphemeral")
    assert note.params["text"] == NOT_AN_APPROVER
    assert isinstance(await sl.wait_for_event(request_id, AnswerRefused), AnswerRefused)
    assert not (await sl.client.app[REQUESTS].find_request(request_id)).final


async def four_eyes(sl: SlackApp) -> RequestView:
    """Bob and Carol, linked on Slack and in ``finance``; a request that needs both."""
    alice = await sl.member("alice", role="owner")
    await sl.link(await sl.member("bob"), BOB_SLACK)
    await sl.link(await sl.member("carol"), CAROL_SLACK)
    await sl.teams.define_group(alice.actor(), "finance", ["bob", "carol"])
    await sl.register()
    view, _ = await sl.client.app[REQUESTS].create_request(
        session_id="s1",
        client_id="agent",
        message="Pay invoice 42?",
        request_type="confirmation",
        approvers=["group:finance"],
        quorum=2,
        actor=alice.actor(answers=False),
    )
    return view


async def test_each_vote_edits_both_messages_and_the_second_decides(sl: SlackApp) -> None:
    view = await four_eyes(sl)
    shown = await sl.delivered(view.request_id, count=2)
    for posted in shown.values():
        assert "0 of 2 approvals" in posted.all_text()

    await sl.click(shown[BOB_SLACK], "Approve", BOB_SLACK)
    await sl.wait_for_event(view.request_id, VoteCast)

    def show(text: str) -> bool:
        return all(text in sl.fake.messages[(p.channel, p.ts)].all_text() for p in shown.values())

    await sl.fake.wait_until(lambda: show("1 of 2 approvals — bob ✅"))
    for posted in shown.values():  # the buttons stay while it is open
        assert len(sl.fake.message(posted.channel, posted.ts).buttons()) == 2

    await sl.click(shown[BOB_SLACK], "Approve", BOB_SLACK)  # bob again
    (note,) = await sl.fake.wait_for("chat.postEphemeral")
    assert note.params["text"] == ALREADY_VOTED

    await sl.click(shown[CAROL_SLACK], "Approve", CAROL_SLACK)
    answered = await sl.wait_for_event(view.request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived) and answered.channel == "slack"
    await sl.fake.wait_until(lambda: show("🗳 Votes: bob ✅, carol ✅"))
    for posted in shown.values():
        assert sl.fake.message(posted.channel, posted.ts).buttons() == []


async def test_a_member_in_the_routed_channel_answers_from_its_message(sl: SlackApp) -> None:
    await sl.member("alice", role="owner")
    bob = await sl.link(await sl.member("bob"), BOB_SLACK)
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"])
    posted = (await sl.delivered(request_id))["#ops"]

    await sl.click(posted, "Approve", STRANGER_SLACK)  # in #ops, but no member
    (note,) = await sl.fake.wait_for("chat.postEphemeral")
    assert note.params["text"] == NOT_AN_APPROVER

    await sl.click(posted, "Approve", BOB_SLACK)
    answered = await sl.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.routed_by) == (bob.user_id, "slack:#ops")


@pytest.mark.parametrize(
    "value",
    ['{"request_id": "nope"', '{"request_id": "%s", "option": 7}', '{"option": 0}'],
    ids=["not-json", "no-such-option", "no-request"],
)
async def test_a_button_value_loopgate_did_not_write_is_refused(sl: SlackApp, value: str) -> None:
    _, request_id = await routed_to_bob(sl)
    posted = (await sl.delivered(request_id))[BOB_SLACK]
    payload = click_payload(posted, "Approve", BOB_SLACK)
    payload["actions"][0]["value"] = value.replace("%s", request_id)
    before = await sl.head()

    response = await sl.post_signed(interaction_body(payload))

    assert response.status == 200  # acknowledged: Slack would show an error otherwise
    (note,) = await sl.fake.wait_for("chat.postEphemeral")
    assert note.params["text"] == INVALID_BUTTON
    assert await sl.head() == before
