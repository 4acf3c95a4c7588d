"""Telegram end to end: a real ``loopgate serve`` in webhook mode, talking to a fake Bot API.

The server runs as its own process with ``TELEGRAM_BOT_TOKEN``,
``LOOPGATE_TELEGRAM__API_BASE`` (the fake, ``tests/telegram/fake_bot_api.py``),
``LOOPGATE_TELEGRAM__MODE=webhook`` and ``LOOPGATE_TELEGRAM__WEBHOOK_SECRET``.
Updates go in as Telegram would send them: ``POST /telegram/webhook`` with the
secret header. On both stores: a request on a session with a ``telegram_id``
reaches that chat within 5 s with its options as buttons; a wrong secret is a
401; a stranger's press leaves it pending; the operator's press answers it; a
redelivered update changes nothing; the message is edited and the press
answered; a request without options is answered by replying to its message.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from cli_server import kill, spawn_server, telegram_env, wait_until_up
from telegram.fake_bot_api import TEST_TOKEN, FakeBotAPI, running_fake

OPERATOR = 4242
STRANGER = 777
SECRET = "e2e-webhook_SECRET-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DELIVERY_LIMIT = 5.0  # seconds from a request's creation to its message in the chat
QUIET = 0.5  # how long "nothing happens" is watched for


@dataclass
class Running:
    base: str
    fake: FakeBotAPI
    http: aiohttp.ClientSession
    log: Path

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}") as response:
            return response.status, await response.json()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        async with self.http.post(f"{self.base}{path}", json=body) as response:
            return response.status, await response.json()

    async def webhook(self, update: dict[str, Any], secret: str | None = SECRET) -> int:
        headers = {} if secret is None else {SECRET_HEADER: secret}
        async with self.http.post(
            f"{self.base}/telegram/webhook", json=update, headers=headers
        ) as response:
            await response.read()
            return response.status

    async def webhook_error(self, update: dict[str, Any], secret: str | None) -> tuple[int, Any]:
        headers = {} if secret is None else {SECRET_HEADER: secret}
        async with self.http.post(
            f"{self.base}/telegram/webhook", json=update, headers=headers
        ) as response:
            return response.status, await response.json()

    async def register(self, session_id: str) -> None:
        status, body = await self.post(
            "/hitl/register",
            {"session_id": session_id, "client_id": "agent", "telegram_id": OPERATOR},
        )
        assert status == 200, body

    async def ask(self, session_id: str, message: str, **fields: Any) -> str:
        status, body = await self.post(
            "/hitl/request",
            {"session_id": session_id, "client_id": "agent", "message": message, **fields},
        )
        assert status == 200, body
        return str(body["request_id"])

    async def poll(self, request_id: str, wait: int = 0) -> dict[str, Any]:
        status, body = await self.get(f"/hitl/poll?request_id={request_id}&wait={wait}")
        assert status == 200, body
        return dict(body)

    async def details(self, request_id: str) -> dict[str, Any]:
        status, body = await self.get(f"/v1/requests/{request_id}")
        assert status == 200, body
        return dict(body)

    async def until_recorded(self, request_id: str, within: float = 5.0) -> None:
        """Until the server has recorded the message it sent (``RequestDelivered``)."""
        deadline = time.monotonic() + within
        while (await self.details(request_id))["delivered_at"] is None:
            assert time.monotonic() < deadline, "the sent message was never recorded"
            await asyncio.sleep(0.02)

    async def delivered(self, text: str) -> dict[str, Any]:
        """The sendMessage to the operator whose text shows ``text``, within the limit."""
        return await self.fake.wait_for_call(
            "sendMessage",
            timeout=DELIVERY_LIMIT,
            where=lambda p: p.get("chat_id") == OPERATOR and text in p.get("text", ""),
        )

    def message_id_of(self, text: str) -> int:
        ids = [mid for (chat, mid), m in self.fake.messages.items() if text in m["text"]]
        assert len(ids) == 1, self.fake.messages
        assert all(chat == OPERATOR for chat, _ in self.fake.messages)
        return ids[0]

    def logged(self, event: str) -> list[dict[str, Any]]:
        lines = [
            msgspec.json.decode(line)
            for line in self.log.read_text().splitlines()
            if line.startswith("{")
        ]
        return [line for line in lines if line.get("event") == event]


@asynccontextmanager
async def telegram_server(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    """The fake Bot API, and ``loopgate serve`` in webhook mode pointed at it."""
    async with running_fake() as fake:
        log = tmp_path / "server.log"
        env = telegram_env(fake.base_url, TEST_TOKEN, SECRET)
        base, process = spawn_server("--db", database_url, cwd=tmp_path, env=env, output=log)
        try:
            # Blocking: in a thread, so the fake (on this loop) answers meanwhile.
            await asyncio.to_thread(wait_until_up, base, process, log)
            async with aiohttp.ClientSession() as http:
                yield Running(base, fake, http, log)
        finally:
            await asyncio.to_thread(kill, process)


async def until_logged(running: Running, event: str, within: float = 5.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + within
    while not (found := running.logged(event)):
        assert time.monotonic() < deadline, running.log.read_text()
        await asyncio.sleep(0.05)
    return found


def buttons(params: dict[str, Any]) -> list[dict[str, Any]]:
    markup = params["reply_markup"]
    return [button for row in markup["inline_keyboard"] for button in row]


async def test_telegram_is_on_in_webhook_mode_and_a_wrong_secret_is_refused(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with telegram_server(fresh_database_url, tmp_path) as running:
        [line] = await until_logged(running, "telegram on")
        assert line["mode"] == "webhook"
        assert line["api_base"] == running.fake.base_url
        # Webhook mode never polls (and with no webhook_url registers nothing).
        assert not running.fake.calls_to("getUpdates")
        assert not running.fake.calls_to("setWebhook")

        update = running.fake.message_update(from_id=OPERATOR, chat_id=OPERATOR, text="/start")
        for secret in ("wrong-secret", SECRET[:-1], None):
            status, body = await running.webhook_error(update, secret)
            assert status in (401, 403), (secret, body)
            assert body["error"]["code"] == "bad_webhook_secret"
        await asyncio.sleep(QUIET)
        assert not running.fake.calls_to("sendMessage"), "a refused update was handled"

        # The same update with the right secret is handled: /start is answered.
        assert await running.webhook(update) == 200
        sent = await running.fake.wait_for_call("sendMessage")
        assert sent["chat_id"] == OPERATOR
        assert str(OPERATOR) in sent["text"]


async def test_a_choice_is_sent_to_the_operator_and_answered_by_their_press(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with telegram_server(fresh_database_url, tmp_path) as running:
        session = f"s-{uuid.uuid4().hex[:8]}"
        question = f"Deploy build {uuid.uuid4().hex[:8]}?"
        await running.register(session)
        asked_at = time.monotonic()
        request_id = await running.ask(
            session,
            question,
            request_type="choice",
            options=[
                {"label": "Deploy now", "approves": True},
                {"label": "Wait", "approves": False},
            ],
        )

        # Sent to the session's chat within 5 s, with the options as buttons.
        sent = await running.delivered(question)
        assert time.monotonic() - asked_at < DELIVERY_LIMIT
        assert [button["text"] for button in buttons(sent)] == ["Deploy now", "Wait"]
        assert all(button.get("callback_data") for button in buttons(sent))
        message_id = running.message_id_of(question)
        deploy = buttons(sent)[0]["callback_data"]

        # A stranger's press is refused politely and leaves the request pending.
        stranger = running.fake.callback_update(
            from_id=STRANGER, chat_id=OPERATOR, message_id=message_id, data=deploy
        )
        assert await running.webhook(stranger) == 200
        refusal = await running.fake.wait_for_call("answerCallbackQuery")
        assert refusal["callback_query_id"] == stranger["callback_query"]["id"]
        assert "not routed to you" in refusal["text"]
        assert refusal.get("show_alert") is True
        pending = await running.poll(request_id)
        assert pending["status"] == "pending"
        assert pending["completed"] is False
        assert pending["response"] == ""
        assert "reply_markup" in running.fake.messages[OPERATOR, message_id], "buttons kept"

        # The operator's press completes it: approved, response = the option.
        press = running.fake.callback_update(
            from_id=OPERATOR, chat_id=OPERATOR, message_id=message_id, data=deploy
        )
        assert await running.webhook(press) == 200
        answered = await running.fake.wait_for_call("answerCallbackQuery", count=2)
        assert answered["callback_query_id"] == press["callback_query"]["id"]
        assert "Deploy now" in answered["text"]
        done = await running.poll(request_id, wait=5)
        assert done["status"] == "completed"
        assert done["completed"] is True
        assert done["approved"] is True
        assert done["response"] == "Deploy now"
        decided_by = (await running.details(request_id))["decided_by"]
        assert decided_by["kind"] == "human"
        assert decided_by["channel"] == "telegram"

        # The message is edited to show the outcome, and its buttons go away.
        edit = await running.fake.wait_for_call(
            "editMessageText",
            where=lambda p: p.get("chat_id") == OPERATOR and p.get("message_id") == message_id,
        )
        shown = running.fake.messages[OPERATOR, message_id]
        assert shown["text"] == edit["text"]
        assert "Approved" in shown["text"]
        assert "Deploy now" in shown["text"]
        assert question in shown["text"]
        assert "reply_markup" not in shown

        # The same update delivered again changes nothing.
        calls_before = len(running.fake.calls)
        assert await running.webhook(press) == 200
        await asyncio.sleep(QUIET)
        assert running.fake.calls[calls_before:] == [], "a redelivered update was handled again"
        assert len(running.fake.calls_to("answerCallbackQuery")) == 2
        assert len(running.fake.calls_to("editMessageText")) == 1
        assert await running.poll(request_id) == done


async def test_a_request_without_options_is_answered_by_replying_to_its_message(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with telegram_server(fresh_database_url, tmp_path) as running:
        session = f"s-{uuid.uuid4().hex[:8]}"
        question = f"Release notes title {uuid.uuid4().hex[:8]}?"
        await running.register(session)
        request_id = await running.ask(session, question, request_type="input")

        sent = await running.delivered(question)
        assert sent["reply_markup"].get("force_reply") is True, "asks for a reply, no buttons"
        message_id = running.message_id_of(question)
        assert "reply_markup" not in running.fake.messages[OPERATOR, message_id]
        # A reply is matched to its request by the recorded message id, which the
        # server appends just after Telegram accepts the message: as a human would,
        # reply once the message is known (a reply within those few ms is refused).
        await running.until_recorded(request_id)
        assert (await running.details(request_id))["status"] == "delivered"

        reply = running.fake.message_update(
            from_id=OPERATOR, chat_id=OPERATOR, text="ship it", reply_to_message_id=message_id
        )
        assert await running.webhook(reply) == 200
        done = await running.poll(request_id, wait=5)
        assert done["status"] == "completed"
        assert done["completed"] is True
        assert done["response"] == "ship it"

        # The reply is acknowledged in the chat, and the request's message edited.
        ack = await running.fake.wait_for_call(
            "sendMessage", where=lambda p: str(p.get("text", "")).startswith("Recorded")
        )
        assert ack["chat_id"] == OPERATOR
        await running.fake.wait_for_call(
            "editMessageText",
            where=lambda p: p.get("chat_id") == OPERATOR and p.get("message_id") == message_id,
        )
        shown = running.fake.messages[OPERATOR, message_id]
        assert "ship it" in shown["text"]
        assert "Approved" in shown["text"] or "Rejected" in shown["text"]

        # Redelivered: no second acknowledgement, nothing changes.
        calls_before = len(running.fake.calls)
        assert await running.webhook(reply) == 200
        await asyncio.sleep(QUIET)
        assert running.fake.calls[calls_before:] == []
        assert await running.poll(request_id) == done
