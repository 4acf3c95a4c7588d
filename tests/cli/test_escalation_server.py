"""Escalation end to end: real ``loopgate serve`` processes, a restart, and the fake Bot API.

A request names its owner and escalates to ``group:leads`` after 2 s. The
first server stops before the step is due; the second, started on the same
database, re-arms the step from the projection, fires it once, and delivers
the request to the lead's linked Telegram chat, where the lead's press answers
it. On both stores.

The request is made over HTTP, as an agent would: ``escalation`` in the body
of ``POST /v1/requests``.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from cli_server import kill, spawn_server, telegram_env, wait_until_up
from telegram.fake_bot_api import TEST_TOKEN, FakeBotAPI, running_fake

from loopgate.events import RequestEscalated
from loopgate.store import open_store

SECRET = "e2e-webhook_SECRET-0123456789"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
PASSWORD = "correct horse battery staple"
LEAD_TG = 5150
STEP_SECONDS = 2
WITHIN = 15.0  # generous: a restart on a busy machine takes a few seconds


@asynccontextmanager
async def serving(url: str, fake: FakeBotAPI, log: Path) -> AsyncIterator[str]:
    env = telegram_env(fake.base_url, TEST_TOKEN, SECRET)
    base, process = spawn_server("--db", url, cwd=log.parent, env=env, output=log)
    try:
        await asyncio.to_thread(wait_until_up, base, process, log)
        yield base
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 15)
        assert process.returncode == 0, await asyncio.to_thread(log.read_text)
    finally:
        await asyncio.to_thread(kill, process)


def logged(log: Path, event: str) -> list[dict[str, Any]]:
    lines = [msgspec.json.decode(s) for s in log.read_text().splitlines() if s.startswith("{")]
    return [line for line in lines if line.get("event") == event]


async def call(
    http: aiohttp.ClientSession, method: str, url: str, token: str | None = None, **kw: Any
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, url, headers=headers, **kw) as response:
        body = await response.json()
        assert response.status in (200, 201), body
        return body


async def log_in(http: aiohttp.ClientSession, base: str, username: str) -> str:
    body = await call(
        http, "POST", f"{base}/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    return str(body["token"])


async def test_a_step_after_a_restart_reaches_the_linked_lead_once_who_answers(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with running_fake() as fake, aiohttp.ClientSession() as http:
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        async with serving(fresh_database_url, fake, first_log) as base:
            await call(
                http,
                "POST",
                f"{base}/api/auth/register",
                json={"username": "alice", "password": PASSWORD},
            )
            alice = await log_in(http, base, "alice")
            body = {"username": "lead", "password": PASSWORD, "role": "approver"}
            await call(http, "POST", f"{base}/v1/members", alice, json=body)
            await call(http, "PUT", f"{base}/v1/groups/leads", alice, json={"members": ["lead"]})
            lead = await log_in(http, base, "lead")
            code = (await call(http, "POST", f"{base}/v1/me/links/telegram", lead))["code"]
            update = fake.message_update(from_id=LEAD_TG, chat_id=LEAD_TG, text=f"/start {code}")
            headers = {SECRET_HEADER: SECRET}
            async with http.post(f"{base}/telegram/webhook", json=update, headers=headers) as r:
                assert r.status == 200
            linked = await fake.wait_for_call(
                "sendMessage", where=lambda m: m["chat_id"] == LEAD_TG
            )
            assert linked["text"].startswith("Linked"), linked["text"]

            session = {"session_id": "s1", "client_id": "agent"}
            await call(http, "POST", f"{base}/v1/sessions", alice, json=session)
            asked = session | {
                "message": "Drop staging?",
                "request_type": "confirmation",
                "timeout_seconds": 60,
                "approvers": ["user:alice"],
                "escalation": [{"after_seconds": STEP_SECONDS, "approvers": ["group:leads"]}],
            }
            made = await call(http, "POST", f"{base}/v1/requests", alice, json=asked)
            request_id = made["request_id"]
            assert made["escalation"] == asked["escalation"]
        # Stopped before the step was due (the request and its plan are in the log).
        assert not logged(first_log, "request escalated"), "too slow a run"

        async with serving(fresh_database_url, fake, second_log) as base:
            sent = await fake.wait_for_call(
                "sendMessage",
                timeout=WITHIN,
                where=lambda m: m["chat_id"] == LEAD_TG and "Drop staging" in m["text"],
            )
            (approve,) = [
                b
                for row in sent["reply_markup"]["inline_keyboard"]
                for b in row
                if b["text"] == "Approve"
            ]
            (message_id,) = [
                mid for (chat, mid), m in fake.messages.items() if "Drop staging" in m["text"]
            ]
            press = fake.callback_update(
                from_id=LEAD_TG,
                chat_id=LEAD_TG,
                message_id=message_id,
                data=approve["callback_data"],
            )
            async with http.post(f"{base}/telegram/webhook", json=press, headers=headers) as r:
                assert r.status == 200
            # Each server signs logins with a key of its own in dev mode: log in again.
            view = await until_final(http, base, request_id, await log_in(http, base, "alice"))

        assert (view["status"], view["decided_by"]["routed_by"]) == ("answered", "group:leads")
        assert view["approvers"] == ["user:alice", "group:leads"]
        assert [e["step"] for e in view["escalations"]] == [0]
        assert [line["request_id"] for line in logged(second_log, "request escalated")] == [
            request_id
        ]
        assert await escalations_in_log(fresh_database_url, request_id) == 1


async def until_final(
    http: aiohttp.ClientSession, base: str, request_id: str, token: str
) -> dict[str, Any]:
    deadline = time.monotonic() + WITHIN
    while True:
        view: dict[str, Any] = await call(http, "GET", f"{base}/v1/requests/{request_id}", token)
        if view["status"] != "pending" and view["status"] != "delivered":
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.05)


async def escalations_in_log(url: str, request_id: str) -> int:
    store = await open_store(url)
    try:
        stream = await store.read_stream(f"request-{request_id}")
        return sum(isinstance(r.event, RequestEscalated) for r in stream)
    finally:
        await store.close()
