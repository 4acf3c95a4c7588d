"""Issue 18's first must-show, tried as a new user would, on both stores.

``loopgate serve`` with no users; the reference's curl requests, without a
key; ``loopgate user create alice`` (the command's own function, on the same
database); alice signs in to the console: the request is in her queue, and
she answers it there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from account_helpers import PASSWORD, TEST_JWT_SECRET, Client
from aiohttp import web
from console_helpers import csrf_in, sign_in, text_of

from loopgate.cli.users import create_user
from loopgate.config import AuthConfig, Config, DatabaseConfig
from loopgate.web.app import create_app

# The reference README's quick start, as README.md shows it.
REGISTER = {
    "session_id": "production-deploy-bot",
    "client_id": "ci-cd-pipeline",
    "telegram_id": 123456789,
}
ASK = {
    "session_id": "production-deploy-bot",
    "client_id": "ci-cd-pipeline",
    "message": "Deploy v2.1.0 to production? All tests passed ✅",
    "options": ["🚀 Deploy", "⏸️ Hold", "🔍 Review First"],
    "metadata": {"version": "v2.1.0", "tests_passed": 847},
}


async def test_a_request_made_before_anyone_signed_up_is_in_the_first_users_queue(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    open_test_store: Any,
    store_url: str,
    config: Config,
) -> None:
    store = await open_test_store()
    assert await store.fetch("SELECT 1 FROM users") == []  # a server nobody has used
    config = msgspec.structs.replace(
        config,
        database=DatabaseConfig(url=store_url),
        auth=AuthConfig(jwt_secret=TEST_JWT_SECRET),  # loopback: the open mode
    )
    client = await aiohttp_client(create_app(config, store=store))

    registered = await client.post("/hitl/register", json=REGISTER)
    assert registered.status == 200, await registered.text()
    asked = await client.post("/hitl/request", json=ASK)
    assert asked.status == 200, await asked.text()
    request_id = (await asked.json())["request_id"]

    alice_id = await create_user(config, "alice", PASSWORD)

    signed_in = await sign_in(client, "alice")
    assert signed_in.status == 303, await signed_in.text()
    queue = await client.get("/console")
    assert queue.status == 200
    page = await queue.text()
    assert ASK["message"] in text_of(page)
    assert f"/console/requests/{request_id}" in page

    form = await client.get(f"/console/requests/{request_id}")
    answered = await client.post(
        f"/console/requests/{request_id}/answer",
        data={"csrf_token": csrf_in(await form.text()), "option": "🚀 Deploy"},
        allow_redirects=False,
    )
    assert answered.status == 303, text_of(await answered.text())
    assert "notice=answered" in answered.headers["Location"]

    polled = await (await client.get("/hitl/poll", params={"request_id": request_id})).json()
    assert (polled["status"], polled["approved"], polled["response"]) == (
        "completed",
        True,
        "🚀 Deploy",
    )
    view = await (await client.get(f"/v1/requests/{request_id}")).json()
    assert view["decided_by"]["kind"] == "human"
    assert (view["decided_by"]["id"], view["decided_by"]["channel"]) == (alice_id, "console")
