"""Session ids are per tenant: two tenants register the same id and get two sessions.

Each sees only its own session, through every surface that names one: its
requests, ``/hitl/status``, ``/v1/sessions/{id}``, the pending list, the
session's SSE stream, the console's sessions page and the audit export.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import msgspec
from account_helpers import AppClientFactory, Client, User, api_key, new_key, sign_up
from console_helpers import sign_in, text_of
from hitl_helpers import README_REQUEST, assert_error

from loopgate.audit.export import CSV_COLUMNS
from loopgate.commands.sessions import session_stream

BOT = "production-deploy-bot"


class Tenant:
    """One user, their API key, their console browser and the request they asked."""

    def __init__(self, user: User, key: dict[str, str], console: Client, telegram_id: int) -> None:
        self.user, self.key, self.console, self.telegram_id = user, key, console, telegram_id
        self.client_id = f"{user.username}-ci"
        self.request_id = ""


async def sse_events(client: Client, path: str, n: int, headers: dict[str, str]) -> list[Any]:
    """The first ``n`` events of an SSE stream, decoded (heartbeats skipped)."""
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    events: list[Any] = []
    async with asyncio.timeout(10):
        while len(events) < n:
            line = (await response.content.readline()).decode()
            assert line, "the stream ended"
            if line.startswith("data:"):
                events.append(json.loads(line.removeprefix("data:")))
    response.close()
    return events


async def test_two_tenants_register_the_same_session_id_and_each_sees_only_its_own(
    app_client: AppClientFactory,
) -> None:
    client = await app_client(require_api_key="true")
    tenants = []
    for name, telegram_id in (("alice", 11), ("bob", 22)):
        user = await sign_up(client, name)
        key = api_key((await new_key(client, user))["raw_key"])
        console = await app_client(require_api_key="true")
        assert (await sign_in(console, user.username)).status == 303
        tenants.append(Tenant(user, key, console, telegram_id))

    for tenant in tenants:
        body = {"session_id": BOT, "client_id": tenant.client_id, "telegram_id": tenant.telegram_id}
        registered = await client.post("/hitl/register", json=body, headers=tenant.key)
        assert registered.status == 200, await registered.text()
        asked = {**README_REQUEST, "client_id": tenant.client_id, "message": tenant.user.username}
        created = await client.post("/hitl/request", json=asked, headers=tenant.key)
        assert created.status == 200, await created.text()
        tenant.request_id = (await created.json())["request_id"]

    alice, bob = tenants
    for me, other in ((alice, bob), (bob, alice)):
        session = await (await client.get(f"/v1/sessions/{BOT}", headers=me.key)).json()
        assert (session["client_id"], session["telegram_id"]) == (me.client_id, me.telegram_id)

        status = await client.get("/hitl/status", params={"session_id": BOT}, headers=me.key)
        status_body = await status.json()
        assert (status_body["client_id"], status_body["pending_requests"]) == (me.client_id, 1)

        pending = await (await client.get("/hitl/pending", headers=me.key)).json()
        assert [r["id"] for r in pending["pending_requests"]] == [me.request_id]
        listed = await client.get("/v1/requests", params={"session_id": BOT}, headers=me.key)
        assert [r["request_id"] for r in (await listed.json())["requests"]] == [me.request_id]
        theirs = await client.get(f"/v1/requests/{other.request_id}", headers=me.key)
        await assert_error(theirs, 404, "request_not_found")

        events = await sse_events(client, f"/v1/sessions/{BOT}/events", 2, me.key)
        assert [(e["type"], e["stream"]) for e in events] == [
            ("session.registered", session_stream(me.user.user_id, BOT)),
            ("request.created", f"request-{me.request_id}"),
        ]
        assert events[0]["data"]["client_id"] == me.client_id

        export = await client.get(
            "/v1/audit/export", params={"session_id": BOT}, headers=me.user.bearer
        )
        lines = [msgspec.json.decode(line) for line in (await export.read()).splitlines()]
        assert {line["stream"] for line in lines} == {
            session_stream(me.user.user_id, BOT),
            f"request-{me.request_id}",
        }
        assert {line["tenant"] for line in lines} == {me.user.user_id}

        page = text_of(await (await me.console.get("/console/sessions")).text())
        assert f"{BOT} {me.client_id} {me.telegram_id}" in page
        assert other.client_id not in page

        download = await me.console.get(
            "/console/export/download", params={"format": "csv", "session_id": BOT}
        )
        rows = list(csv.reader(io.StringIO((await download.read()).decode())))[1:]
        assert {row[CSV_COLUMNS.index("stream")] for row in rows} == {
            session_stream(me.user.user_id, BOT),
            f"request-{me.request_id}",
        }


async def test_deactivating_ones_session_leaves_the_other_tenants_of_that_id_active(
    app_client: AppClientFactory,
) -> None:
    client = await app_client(require_api_key="true")
    keys = []
    for name in ("alice", "bob"):
        key = api_key((await new_key(client, await sign_up(client, name)))["raw_key"])
        body = {"session_id": BOT, "client_id": "ci"}
        assert (await client.post("/v1/sessions", json=body, headers=key)).status == 201
        keys.append(key)
    alices, bobs = keys

    off = await client.post("/hitl/deactivate", json={"session_id": BOT}, headers=alices)
    assert off.status == 200, await off.text()

    asked = {**README_REQUEST, "client_id": "ci"}
    await assert_error(
        await client.post("/v1/requests", json=asked, headers=alices), 409, "session_inactive"
    )
    created = await client.post("/v1/requests", json=asked, headers=bobs)
    assert created.status == 201, await created.text()
    assert (await (await client.get(f"/v1/sessions/{BOT}", headers=bobs)).json())["active"]
