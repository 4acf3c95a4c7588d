"""``POST /slack/events``: only what Slack signed gets in; nothing else is read or recorded."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiohttp import web

from loopgate.channels.slack.render import EDIT_LABEL
from loopgate.config import Config, ConfigError
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import REQUESTS
from loopgate.web.slack import EVENTS_PATH
from slack_channel.conftest import AppFactory, Client
from slack_channel.fake_slack_api import FakeSlackAPI
from slack_channel.helpers import (
    BOB_SLACK,
    SlackApp,
    click_payload,
    command_body,
    interaction_body,
    signed_headers,
    slack_config,
)

ROOT = Path(__file__).resolve().parents[2]


async def clicked_body(sl: SlackApp) -> tuple[str, str]:
    """A request routed to #ops and the body of a click on its Approve: (request id, body)."""
    await sl.register()
    request_id = await sl.ask(approvers=["slack:#ops"])
    posted = (await sl.delivered(request_id))["#ops"]
    return request_id, interaction_body(click_payload(posted, "Approve", BOB_SLACK))


async def refused(response: Any, status: int, code: str) -> None:
    assert response.status == status, await response.text()
    assert (await response.json())["error"]["code"] == code


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda body: signed_headers(body, secret="not-the-secret"), id="forged"),
        pytest.param(lambda body: signed_headers(body, at=time.time() - 600), id="10-min-old"),
        pytest.param(lambda body: signed_headers(body + "x"), id="other-body"),
        pytest.param(
            lambda body: {"Content-Type": "application/x-www-form-urlencoded"}, id="unsigned"
        ),
        pytest.param(
            lambda body: signed_headers(body) | {"X-Slack-Signature": "v0=" + "0" * 64},
            id="zero-signature",
        ),
        pytest.param(
            lambda body: signed_headers(body) | {"X-Slack-Request-Timestamp": "soon"},
            id="bad-timestamp",
        ),
    ],
)
async def test_a_click_not_signed_by_slack_now_is_a_401_and_changes_nothing(
    sl: SlackApp, headers: Callable[[str], dict[str, str]]
) -> None:
    request_id, body = await clicked_body(sl)
    before = await sl.head()

    response = await sl.client.post("/slack/events", data=body, headers=headers(body))

    await refused(response, 401, "bad_slack_signature")
    assert await sl.head() == before
    assert not (await sl.client.app[REQUESTS].find_request(request_id)).final
    assert sl.fake.calls_to("chat.postEphemeral") == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="empty"),
        pytest.param("payload=%7Bnot+json", id="payload-not-json"),
        pytest.param("payload=%5B1%2C2%5D", id="payload-not-an-object"),
        pytest.param("payload=%7B%22user%22%3A1%7D", id="payload-without-type"),
        pytest.param("hello=world", id="neither-payload-nor-command"),
    ],
)
async def test_a_signed_body_that_is_no_slack_request_is_a_400(sl: SlackApp, body: str) -> None:
    before = await sl.head()
    await refused(await sl.post_signed(body), 400, "invalid_slack_payload")
    assert await sl.head() == before


async def test_a_body_that_is_not_utf8_is_a_400(sl: SlackApp) -> None:
    raw = b"payload=\xff\xfe"
    response = await sl.client.post("/slack/events", data=raw, headers=signed_headers(""))
    await refused(response, 400, "invalid_slack_payload")


async def test_an_oversized_body_is_refused_before_its_signature_is_checked(
    sl: SlackApp,
) -> None:
    body = "payload=" + "x" * (300 * 1024)
    response = await sl.post_signed(body)
    await refused(response, 413, "payload_too_large")


async def test_a_signed_action_of_no_loopgate_button_is_a_404(sl: SlackApp) -> None:
    _, body = await clicked_body(sl)
    other = body.replace("loopgate_option_0", "someone_elses_button")
    await refused(await sl.post_signed(other), 404, "unhandled_slack_request")


async def test_the_unknown_slash_word_gets_the_help(sl: SlackApp) -> None:
    assert "/loopgate link <code>" in await sl.command("help", BOB_SLACK)
    assert "/loopgate link <code>" in await sl.command("", BOB_SLACK)
    response = await sl.post_signed(command_body("help", BOB_SLACK))
    assert response.status == 200


async def test_socket_mode_has_no_events_route(slack_app: AppFactory) -> None:
    sl = await slack_app(mode="socket")
    body = command_body("help", BOB_SLACK)
    response = await sl.client.post("/slack/events", data=body, headers=signed_headers(body))
    assert response.status == 404


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"signing_secret": ""}, "slack.signing_secret"),
        ({"mode": "socket", "app_token": ""}, "slack.app_token"),
        ({"mode": "socket", "app_token": "xoxb-not-an-app-token"}, "slack.app_token"),
    ],
)
def test_a_slack_set_up_that_cannot_work_is_refused_at_start(
    fake_slack: FakeSlackAPI, config: Config, settings: dict[str, Any], complaint: str
) -> None:
    broken = msgspec.structs.replace(config, slack=slack_config(fake_slack, **settings))
    with pytest.raises(ConfigError, match=complaint):
        create_app(broken)


async def test_slack_off_without_a_bot_token(
    store: EventStore,
    config: Config,
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
) -> None:
    client = await aiohttp_client(create_app(config, store=store))
    assert (await client.post("/slack/events", data="")).status == 404


async def test_a_click_on_edit_in_console_is_acknowledged_and_records_nothing(
    sl: SlackApp,
) -> None:
    await sl.register()
    response = await sl.client.post(
        "/v1/requests",
        json={
            "session_id": "s1",
            "client_id": "agent",
            "message": "Deploy?",
            "request_type": "confirmation",
            "approvers": ["slack:#ops"],
            "action": {"tool": "deploy", "args": {"env": "staging"}},
            "editable": True,
        },
    )
    assert response.status == 201, await response.text()
    request_id = (await response.json())["request_id"]
    posted = (await sl.delivered(request_id))["#ops"]
    assert EDIT_LABEL in [b["text"]["text"] for b in posted.buttons()]
    before = await sl.head()

    response = await sl.click(posted, EDIT_LABEL, BOB_SLACK)

    assert response.status == 200
    assert await sl.head() == before
    assert sl.fake.calls_to("chat.postEphemeral") == []


async def test_slacks_ssl_check_of_the_command_url_is_answered(sl: SlackApp) -> None:
    before = await sl.head()
    response = await sl.post_signed("ssl_check=1&token=verification-token-unused")
    assert response.status == 200
    assert await sl.head() == before


def test_the_manifest_points_slack_at_the_events_route() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the manifest (a dev dependency's)")
    manifest = yaml.safe_load((ROOT / "examples" / "slack-manifest.yaml").read_text())
    url = f"https://YOUR-HOST{EVENTS_PATH}"
    assert manifest["settings"]["interactivity"]["request_url"] == url
    (command,) = manifest["features"]["slash_commands"]
    assert (command["command"], command["url"]) == ("/loopgate", url)
    assert set(manifest["oauth_config"]["scopes"]["bot"]) >= {"chat:write", "im:write", "commands"}
    assert manifest["settings"]["socket_mode_enabled"] is False
