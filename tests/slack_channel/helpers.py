"""Shared by the Slack tests: settings, Slack's request signing, and an app handle."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from loopgate.config import SlackConfig
from loopgate.events import Event, RequestDelivered, Role
from loopgate.store.base import EventStore
from loopgate.teams import Membership, Teams
from loopgate.web.keys import ACCOUNTS, HUB, TEAMS
from slack_channel.fake_slack_api import APP_TOKEN, BOT_TOKEN, TEAM_ID, FakeSlackAPI, Posted

SIGNING_SECRET = "test-signing-secret-0123456789abcdef"
PASSWORD = "correct horse battery staple"
BOB_SLACK = "U0BOB"
CAROL_SLACK = "U0CAROL"
STRANGER_SLACK = "U0STRANGER"


def slack_config(fake: FakeSlackAPI, **overrides: Any) -> SlackConfig:
    """HTTP mode against the fake, with retries fast enough for tests."""
    settings: dict[str, Any] = {
        "bot_token": BOT_TOKEN,
        "signing_secret": SIGNING_SECRET,
        "app_token": APP_TOKEN,
        "api_base": fake.base_url,
        "mode": "http",
        "delivery_attempts": 3,
        "retry_seconds": 0.05,
    }
    return SlackConfig(**(settings | overrides))


def signed_headers(
    body: str, *, secret: str = SIGNING_SECRET, at: float | None = None
) -> dict[str, str]:
    """The headers Slack sends with ``body``: ``v0=`` HMAC-SHA256 of ``v0:<ts>:<body>``."""
    timestamp = str(int(time.time() if at is None else at))
    base = f"v0:{timestamp}:{body}".encode()
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
        "Content-Type": "application/x-www-form-urlencoded",
    }


def click_payload(posted: Posted, label: str, user_id: str) -> dict[str, Any]:
    """The ``block_actions`` payload Slack sends when ``user_id`` clicks ``label`` on ``posted``."""
    (button,) = [b for b in posted.buttons() if b["text"]["text"] == label]
    return {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "loopgate"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0LOOPGATE",
        "token": "verification-token-unused",
        "container": {
            "type": "message",
            "message_ts": posted.ts,
            "channel_id": posted.channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1.2.3",
        "channel": {"id": posted.channel, "name": "directmessage"},
        "message": {"type": "message", "ts": posted.ts, "text": posted.text},
        "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": "loopgate_answer",
                "text": button["text"],
                **({"value": button["value"]} if "value" in button else {"url": button["url"]}),
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def interaction_body(payload: dict[str, Any]) -> str:
    return urlencode({"payload": json.dumps(payload)})


def command_body(text: str, user_id: str, user_name: str = "bob") -> str:
    return urlencode(
        {
            "token": "verification-token-unused",
            "team_id": TEAM_ID,
            "team_domain": "loopgate",
            "channel_id": "D0BOB",
            "channel_name": "directmessage",
            "user_id": user_id,
            "user_name": user_name,
            "command": "/loopgate",
            "text": text,
            "api_app_id": "A0LOOPGATE",
            "response_url": "https://hooks.slack.invalid/commands/T0/1/x",
            "trigger_id": "1.2.3",
        }
    )


@dataclass
class SlackApp:
    client: TestClient[Any, Any]
    fake: FakeSlackAPI
    store: EventStore

    async def post_signed(self, body: str, **signing: Any) -> ClientResponse:
        headers = signed_headers(body, **signing)
        return await self.client.post("/slack/events", data=body, headers=headers)

    async def click(self, posted: Posted, label: str, user_id: str) -> ClientResponse:
        response = await self.post_signed(interaction_body(click_payload(posted, label, user_id)))
        assert response.status == 200, await response.text()
        return response

    async def command(self, text: str, user_id: str, user_name: str = "bob") -> str:
        """``/loopgate <text>`` from ``user_id``; the ephemeral answer."""
        response = await self.post_signed(command_body(text, user_id, user_name))
        assert response.status == 200, await response.text()
        answer: str = (await response.json())["text"]
        return answer

    async def ask(self, session_id: str = "s1", **body: Any) -> str:
        """Create a request (a confirmation unless told otherwise); its id."""
        payload = {
            "session_id": session_id,
            "client_id": "agent",
            "message": "Deploy?",
            "request_type": "confirmation",
        }
        response = await self.client.post("/hitl/request", json=payload | body)
        assert response.status == 200, await response.text()
        request_id: str = (await response.json())["request_id"]
        return request_id

    async def register(self, session_id: str = "s1") -> None:
        body = {"session_id": session_id, "client_id": "agent"}
        response = await self.client.post("/v1/sessions", json=body)
        assert response.status in (200, 201), await response.text()

    async def deliveries(self, request_id: str, count: int = 1) -> list[RequestDelivered]:
        found = await self.wait_for_events(request_id, RequestDelivered, count)
        return [d for d in found if isinstance(d, RequestDelivered)]

    async def delivered(self, request_id: str, count: int = 1) -> dict[str, Posted]:
        """The request's Slack messages once ``count`` were recorded, as first sent, by address."""
        shown = {}
        for delivery in await self.deliveries(request_id, count):
            assert delivery.channel == "slack" and delivery.conversation is not None
            assert delivery.address is not None and delivery.external_message_id is not None
            shown[delivery.address] = self.fake.message(
                delivery.conversation, delivery.external_message_id
            )
        return shown

    async def events(self, request_id: str) -> list[Event]:
        return [record.event for record in await self.store.read_stream(f"request-{request_id}")]

    async def wait_for_events(
        self, request_id: str, kind: type[Event], count: int = 1
    ) -> list[Event]:
        """The request's first ``count`` events of type ``kind``, waiting (10 s at most)."""
        hub = self.client.app[HUB]
        async with asyncio.timeout(10):
            with hub.watch(f"request-{request_id}") as changed:
                while True:
                    found = [e for e in await self.events(request_id) if isinstance(e, kind)]
                    if len(found) >= count:
                        return found[:count]
                    await changed.wait()
                    changed.clear()

    async def wait_for_event(self, request_id: str, kind: type[Event]) -> Event:
        return (await self.wait_for_events(request_id, kind))[0]

    @property
    def teams(self) -> Teams:
        return self.client.app[TEAMS]

    async def member(self, username: str, role: Role = "approver") -> Membership:
        """A user of the default workspace (the server's first user owns it, whatever ``role``)."""
        user = await self.client.app[ACCOUNTS].register_user(username, PASSWORD, role=role)
        membership = await self.teams.membership(user.user_id)
        assert membership is not None
        return membership

    async def link(self, member: Membership, slack_user: str) -> Membership:
        """Link ``slack_user`` to ``member`` as they would: ``/loopgate link <code>``."""
        code, _ = await self.teams.issue_link_code(member.actor(), "slack")
        answer = await self.command(f"link {code}", slack_user, member.username)
        assert answer.startswith("Linked"), answer
        linked = await self.teams.identity("slack", slack_user)
        assert linked is not None and linked.user_id == member.user_id
        return linked

    async def head(self) -> int:
        """How many events the log holds: unchanged by a refused request."""
        rows = await self.store.fetch("SELECT COUNT(*) AS n FROM events", ())
        return int(rows[0]["n"])
