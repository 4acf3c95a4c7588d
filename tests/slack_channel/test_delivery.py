"""Requests reach Slack: a member's DM, a channel the routing names; failures recorded."""

from __future__ import annotations

from loopgate.events import DeliveryFailed, RequestDelivered
from slack_channel.fake_slack_api import BOT_TOKEN
from slack_channel.helpers import BOB_SLACK, SlackApp


async def test_a_request_routed_to_a_linked_member_reaches_their_dm(sl: SlackApp) -> None:
    await sl.member("alice", role="owner")
    await sl.link(await sl.member("bob"), BOB_SLACK)
    await sl.register()
    request_id = await sl.ask(approvers=["user:bob"], message="Pay invoice 42?")

    (delivery,) = await sl.deliveries(request_id)
    assert delivery.channel == "slack"
    assert delivery.address == BOB_SLACK
    assert delivery.conversation == sl.fake.dm_of(BOB_SLACK)
    assert delivery.routed_by is None
    assert delivery.chat_id is None
    (call,) = sl.fake.succeeded("chat.postMessage")
    assert call.params["channel"] == BOB_SLACK and call.token == BOT_TOKEN
    assert delivery.external_message_id is not None
    posted = sl.fake.message(delivery.conversation, delivery.external_message_id)
    assert "Pay invoice 42?" in posted.all_text()
    assert delivery.shown_text == posted.text
    assert delivery.shown_options == ("Approve", "Reject")
    assert [b["text"]["text"] for b in posted.buttons()] == ["Approve", "Reject"]


async def test_a_request_routed_to_a_slack_channel_is_posted_there(sl: SlackApp) -> None:
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"], message="Restart the cluster?")

    (delivery,) = await sl.deliveries(request_id)
    assert (delivery.address, delivery.routed_by) == ("#ops", "slack:#ops")
    assert delivery.conversation == sl.fake.channel_id("#ops")
    (call,) = sl.fake.succeeded("chat.postMessage")
    assert call.params["channel"] == "#ops"


async def test_a_channel_slack_does_not_know_is_given_up_on_at_once(sl: SlackApp) -> None:
    sl.fake.unknown_channels.add("#nowhere")
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#nowhere", "slack:#ops"])

    failed = await sl.wait_for_event(request_id, DeliveryFailed)
    assert isinstance(failed, DeliveryFailed)
    assert (failed.channel, failed.address, failed.attempts) == ("slack", "#nowhere", 1)
    assert "channel_not_found" in failed.error
    (delivered,) = await sl.deliveries(request_id)
    assert delivered.address == "#ops"
    assert len(sl.fake.calls_to("chat.postMessage")) == 2  # one each: no retry of a refusal


async def test_a_request_for_nobody_on_slack_posts_nothing(sl: SlackApp) -> None:
    await sl.member("alice", role="owner")
    await sl.member("bob")  # not linked on Slack
    await sl.register()
    request_id = await sl.ask(approvers=["user:bob", "slack:#ops"])
    await sl.deliveries(request_id)  # #ops: the sender has handled the request
    assert [c.params["channel"] for c in sl.fake.calls_to("chat.postMessage")] == ["#ops"]
    assert all(
        not isinstance(e, RequestDelivered) or e.address == "#ops"
        for e in await sl.events(request_id)
    )


async def test_a_slack_selector_that_names_no_channel_is_refused_at_creation(
    sl: SlackApp,
) -> None:
    await sl.register()
    body = {"session_id": "s1", "client_id": "agent", "message": "Deploy?"}
    response = await sl.client.post("/hitl/request", json=body | {"approvers": ["slack:ops"]})
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "validation_failed" and "Slack channel" in error["message"]
    assert sl.fake.calls_to("chat.postMessage") == []
