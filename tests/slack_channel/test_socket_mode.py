"""Socket Mode: no public URL; the server opens a WebSocket to Slack and answers over it."""

from __future__ import annotations

from urllib.parse import parse_qsl

from loopgate.channels.slack.app import HELP
from loopgate.events import ResponseReceived
from slack_channel.conftest import AppFactory
from slack_channel.fake_slack_api import APP_TOKEN, FakeSlackAPI
from slack_channel.helpers import BOB_SLACK, click_payload, command_body


async def test_a_click_sent_over_the_socket_is_acknowledged_and_answers(
    slack_app: AppFactory,
) -> None:
    sl = await slack_app(mode="socket", signing_secret="")
    await sl.member("alice", role="owner")
    bob = await sl.member("bob")
    code, _ = await sl.teams.issue_link_code(bob.actor(), "slack")
    await sl.teams.link_identity(code, "slack", BOB_SLACK, display="bob")
    await sl.register()
    request_id = await sl.ask(approvers=["user:bob"])
    posted = (await sl.delivered(request_id))[BOB_SLACK]

    envelope_id = await sl.fake.send_envelope(click_payload(posted, "Approve", BOB_SLACK))

    (opened,) = sl.fake.calls_to("apps.connections.open")
    assert opened.token == APP_TOKEN
    (ack,) = [a for a in sl.fake.acks if a.get("envelope_id") == envelope_id]
    assert ack == {"envelope_id": envelope_id}
    answered = await sl.wait_for_event(request_id, ResponseReceived)
    assert isinstance(answered, ResponseReceived)
    assert (answered.responder, answered.channel) == (bob.user_id, "slack")


async def test_a_socket_slack_refuses_does_not_stop_the_server(
    slack_app: AppFactory,
) -> None:
    sl = await slack_app(mode="socket", signing_secret="", app_token="xapp-wrong")
    await sl.fake.wait_until(lambda: bool(sl.fake.calls_to("apps.connections.open")))
    assert sl.fake.calls_to("apps.connections.open")[0].error == "invalid_auth"
    assert (await sl.client.get("/healthz")).status == 200  # the server runs regardless


async def test_slack_unreachable_at_start_is_connected_to_once_it_answers(
    slack_app: AppFactory, fake_slack: FakeSlackAPI
) -> None:
    fake_slack.rate_limit(1)  # the first apps.connections.open fails
    sl = await slack_app(mode="socket", signing_secret="")

    command = dict(parse_qsl(command_body("help", BOB_SLACK)))
    # Sent once the socket is open: on the second try, after the SDK's pause.
    envelope_id = await sl.fake.send_envelope(command, kind="slash_commands")

    assert [c.status for c in sl.fake.calls_to("apps.connections.open")] == [429, 200]
    (ack,) = [a for a in sl.fake.acks if a.get("envelope_id") == envelope_id]
    assert ack["payload"] == {"text": HELP, "response_type": "ephemeral"}
