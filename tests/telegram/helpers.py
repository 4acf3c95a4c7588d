"""Shared by the Telegram tests: settings, and an app handle with the usual steps."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any, NamedTuple

from aiohttp.test_utils import TestClient

from loopgate.config import TelegramConfig
from loopgate.events import Event, RequestDelivered, Role
from loopgate.store.base import EventStore
from loopgate.teams import Membership, Teams
from loopgate.web.keys import ACCOUNTS, HUB, TEAMS
from telegram.fake_bot_api import TEST_TOKEN, FakeBotAPI

WEBHOOK_SECRET = "test-webhook-secret_0123456789"
OPERATOR = 1001
STRANGER = 2002
PASSWORD = "correct horse battery staple"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def telegram_config(fake: FakeBotAPI, **overrides: Any) -> TelegramConfig:
    """Webhook mode against the fake, with retries fast enough for tests."""
    settings: dict[str, Any] = {
        "bot_token": TEST_TOKEN,
        "api_base": fake.base_url,
        "mode": "webhook",
        "webhook_secret": WEBHOOK_SECRET,
        "delivery_attempts": 3,
        "retry_seconds": 0.05,
    }
    return TelegramConfig(**(settings | overrides))


class Shown(NamedTuple):
    """A request's message on Telegram, as the fake holds it now."""

    chat_id: int
    message_id: int
    message: dict[str, Any]

    def buttons(self) -> list[dict[str, Any]]:
        markup = self.message.get("reply_markup") or {"inline_keyboard": []}
        return [button for row in markup["inline_keyboard"] for button in row]


@dataclass
class TelegramApp:
    client: TestClient[Any, Any]
    fake: FakeBotAPI
    store: EventStore

    async def register(self, session_id: str = "s1", telegram_id: int | None = OPERATOR) -> None:
        body: dict[str, Any] = {"session_id": session_id, "client_id": "agent"}
        if telegram_id is None:  # the reference's route requires a telegram_id
            response = await self.client.post("/v1/sessions", json=body)
        else:
            response = await self.client.post(
                "/hitl/register", json=body | {"telegram_id": telegram_id}
            )
        assert response.status in (200, 201), await response.text()

    async def ask(self, session_id: str = "s1", **body: Any) -> str:
        """Create a request (a confirmation unless told otherwise); its id."""
        payload = {"session_id": session_id, "client_id": "agent", "message": "Deploy?"}
        response = await self.client.post("/hitl/request", json=payload | body)
        assert response.status == 200, await response.text()
        request_id: str = (await response.json())["request_id"]
        return request_id

    async def delivered(self, request_id: str) -> Shown:
        """Wait until the request's message was sent and recorded; where it is and what it says."""
        delivery = await self.wait_for_event(request_id, RequestDelivered)
        assert isinstance(delivery, RequestDelivered) and delivery.channel == "telegram"
        assert delivery.chat_id is not None and delivery.external_message_id is not None
        key = (delivery.chat_id, int(delivery.external_message_id))
        return Shown(*key, copy.deepcopy(self.fake.messages[key]))  # as first sent

    async def post_update(
        self, update: dict[str, Any] | bytes, secret: str | None = WEBHOOK_SECRET
    ) -> Any:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        if isinstance(update, bytes):
            return await self.client.post("/telegram/webhook", data=update, headers=headers)
        return await self.client.post("/telegram/webhook", json=update, headers=headers)

    async def events(self, request_id: str) -> list[Event]:
        return [record.event for record in await self.store.read_stream(f"request-{request_id}")]

    async def event_types(self, request_id: str) -> list[type[Event]]:
        return [type(event) for event in await self.events(request_id)]

    async def wait_for_event(self, request_id: str, kind: type[Event]) -> Event:
        """The request's first event of type ``kind``, waiting (5 s at most) on the app's hub."""
        return (await self.wait_for_events(request_id, kind))[0]

    async def wait_for_events(
        self, request_id: str, kind: type[Event], count: int = 1
    ) -> list[Event]:
        """The request's first ``count`` events of type ``kind``, waiting (5 s at most)."""
        hub = self.client.app[HUB]
        async with asyncio.timeout(5):
            with hub.watch(f"request-{request_id}") as changed:
                while True:
                    found = [e for e in await self.events(request_id) if isinstance(e, kind)]
                    if len(found) >= count:
                        return found[:count]
                    await changed.wait()
                    changed.clear()

    @property
    def teams(self) -> Teams:
        return self.client.app[TEAMS]

    async def member(self, username: str, role: Role = "approver") -> Membership:
        """A user of the default workspace (the server's first user owns it, whatever ``role``)."""
        user = await self.client.app[ACCOUNTS].register_user(username, PASSWORD, role=role)
        membership = await self.teams.membership(user.user_id)
        assert membership is not None
        return membership

    async def link_code(self, member: Membership) -> str:
        """What ``POST /v1/me/links/telegram`` gives the member: a code for ``/start``."""
        code, _ = await self.teams.issue_link_code(member.actor(), "telegram")
        return code

    async def say(self, from_id: int, text: str) -> dict[str, Any]:
        """Send ``text`` to the bot from a private chat; the bot's reply."""
        before = len(self.fake.calls_to("sendMessage"))
        update = self.fake.message_update(from_id=from_id, chat_id=from_id, text=text)
        assert (await self.post_update(update)).status == 200
        return await self.fake.wait_for_call("sendMessage", count=before + 1)

    async def link(self, member: Membership, telegram_id: int) -> Membership:
        """Link ``telegram_id`` to ``member`` as they would: ``/start <code>``."""
        reply = await self.say(telegram_id, f"/start {await self.link_code(member)}")
        assert reply["text"].startswith("Linked"), reply["text"]
        linked = await self.teams.identity("telegram", str(telegram_id))
        assert linked is not None and linked.user_id == member.user_id
        return linked

    async def poll(self, request_id: str) -> dict[str, Any]:
        response = await self.client.get("/hitl/poll", params={"request_id": request_id})
        assert response.status == 200
        result: dict[str, Any] = await response.json()
        return result
