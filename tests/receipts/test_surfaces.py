"""The receipt reaches the agent on every surface it reads a decision on, and stays home.

``GET /v1/requests/{id}`` (and its long-poll), ``/hitl/poll``, the request's
SSE stream and the MCP tools carry it; a workspace other than the receipt's
cannot redeem it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from receipt_helpers import WIRE, Client, answer, approved, ask, decision, error_code, redeem

from loopgate.config import AuthConfig, Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import ACCOUNTS

JWT_SECRET = "receipts-test-secret-" + "0123456789abcdef" * 3


async def test_the_long_poll_returns_the_receipt_when_the_approval_comes(client: Client) -> None:
    request_id = await ask(client)
    waiting = asyncio.create_task(client.get(f"/v1/requests/{request_id}", params={"wait": "5"}))
    await asyncio.sleep(0.2)
    await answer(client, request_id)
    reply = await (await waiting).json()
    assert reply["outcome"] == "approved"
    assert reply["receipt"] == (await decision(client, request_id))["receipt"] is not None


async def test_the_hitl_poll_carries_the_receipt_only_once_approved(client: Client) -> None:
    request_id = await ask(client)
    before = await (await client.get("/hitl/poll", params={"request_id": request_id})).json()
    assert "receipt" not in before  # the reference's shape: an absent field is left out
    await answer(client, request_id)
    after = await (await client.get("/hitl/poll", params={"request_id": request_id})).json()
    assert after["receipt"] == (await decision(client, request_id))["receipt"]


async def sse_messages(client: Client, path: str, count: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    async with client.get(path) as stream:
        async with asyncio.timeout(10):
            async for raw in stream.content:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    messages.append(msgspec.json.decode(line.removeprefix("data:").strip()))
                    if len(messages) == count:
                        break
    return messages


async def test_the_request_stream_carries_the_receipt_on_the_approving_answer(
    client: Client,
) -> None:
    request_id = await ask(client)
    live = asyncio.create_task(sse_messages(client, f"/v1/requests/{request_id}/events", 2))
    await asyncio.sleep(0.2)
    await answer(client, request_id)
    created, answered = await live
    assert created["type"] == "request.created" and "receipt" not in created
    assert answered["type"] == "request.response_received"
    assert answered["receipt"] == (await decision(client, request_id))["receipt"] is not None
    replayed = await sse_messages(client, f"/v1/requests/{request_id}/events", 2)
    assert replayed[1]["receipt"] == answered["receipt"]


async def test_a_rejection_on_the_stream_carries_no_receipt(client: Client) -> None:
    request_id = await ask(client)
    await answer(client, request_id, "Reject")
    _, answered = await sse_messages(client, f"/v1/requests/{request_id}/events", 2)
    assert "receipt" not in answered


async def test_the_mcp_status_tool_returns_the_receipt(client: Client) -> None:
    request = await approved(client)
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": "check_request_status",
            "arguments": {"request_id": request["request_id"]},
        },
    }
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2025-11-25",
    }
    reply = await client.post("/mcp", json=call, headers=headers)
    assert reply.status == 200, await reply.text()
    text = await reply.text()
    body = (
        msgspec.json.decode(text)
        if text.lstrip().startswith("{")
        else msgspec.json.decode(
            next(ln for ln in text.splitlines() if ln.startswith("data:")).removeprefix("data:")
        )
    )
    assert body["result"]["structuredContent"]["receipt"] == request["receipt"]


async def keyed(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
) -> Client:
    auth = AuthConfig(jwt_secret=JWT_SECRET, require_api_key="true")
    app = create_app(msgspec.structs.replace(config, auth=auth), store=store)
    return await aiohttp_client(app)


async def key_for(client: Client, user_id: str, kind: str = "agent") -> dict[str, str]:
    accounts = client.app[ACCOUNTS]
    raw, _ = await accounts.create_api_key(await accounts.actor_for_user(user_id), kind=kind)  # type: ignore[arg-type]
    return {"X-API-Key": raw}


async def test_only_the_receipts_workspace_may_redeem_it(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    store: EventStore,
    config: Config,
) -> None:
    import uuid

    client = await keyed(aiohttp_client, store, config)
    accounts = client.app[ACCOUNTS]
    tag = uuid.uuid4().hex[:6]
    owner = await accounts.register_user(f"owner_{tag}", "correct horse battery staple")
    teammate = await accounts.register_user(
        f"mate_{tag}", "correct horse battery staple", role="approver"
    )
    stranger = await accounts.register_user(f"other_{tag}", "correct horse battery staple")
    agent = await key_for(client, owner.user_id)
    request_id = await ask(client, WIRE, headers=agent)
    await answer(client, request_id, headers=await key_for(client, teammate.user_id, "operator"))
    token = (await decision(client, request_id, agent))["receipt"]

    status, body = await redeem(client, token, headers=await key_for(client, stranger.user_id))
    assert (status, error_code(body)) == (404, "receipt_not_found")
    anonymous = await client.post("/v1/receipts/redeem", json={"receipt": token, "action": WIRE})
    assert anonymous.status == 401
    status, body = await redeem(client, token, headers=agent)
    assert status == 200, body
