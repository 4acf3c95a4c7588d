"""``/v1/audit/export`` and ``/v1/requests/{id}/history``: the tenant's evidence, as files."""

from __future__ import annotations

import csv
import io
from typing import Any

import msgspec
import pytest
from account_helpers import AppClientFactory, api_key, new_key, sign_up
from hitl_helpers import (
    README_REQUEST,
    README_SESSION,
    Client,
    answer,
    assert_error,
    create,
    register,
)

from loopgate.audit.export import CSV_COLUMNS
from loopgate.audit.verify import verify_export

TRICKY = 'Pay "Acme, Inc." CHF 1,500,000\nfrom Zürich ✓?'


async def activity(client: Client) -> tuple[str, str]:
    """A session's worth: one request answered, one cancelled; their ids."""
    await register(client)
    answered = await create(client, message=TRICKY)
    assert (await answer(client, answered, option="🚀 Deploy")).status == 200
    cancelled = await create(client, message="Second thoughts?")
    assert (await client.post("/hitl/cancel", json={"request_id": cancelled})).status == 200
    return answered, cancelled


async def export_lines(client: Client, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit/export", params=query)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("application/x-ndjson")
    return [msgspec.json.decode(line) for line in (await response.read()).splitlines()]


async def test_the_ndjson_export_is_the_log_in_order(client: Client) -> None:
    answered, cancelled = await activity(client)
    lines = await export_lines(client)
    positions = [line["position"] for line in lines]
    assert positions == sorted(set(positions))
    assert [line["type"] for line in lines] == [
        "session.registered",
        "request.created",
        "request.response_received",
        "request.created",
        "request.cancelled",
    ]
    created, decided = lines[1], lines[2]
    assert created["stream"] == f"request-{answered}"
    assert created["data"]["message"] == TRICKY
    assert (decided["actor"], decided["channel"]) == ("anonymous", "api")
    assert decided["data"]["option"] == "🚀 Deploy"
    assert {"recorded_at", "prev_hash", "hash", "version", "meta"} <= set(decided)
    assert lines[4]["stream"] == f"request-{cancelled}"


async def test_the_export_verifies_on_its_own(client: Client) -> None:
    await activity(client)
    response = await client.get("/v1/audit/export")
    body = await response.read()
    checked = verify_export(body.splitlines())
    assert (checked.ok, checked.events) == (True, 5)
    edited = body.replace(b"Second thoughts?", b"Second thoughts!")
    broken = verify_export(edited.splitlines())
    assert broken.broken_at == 4  # the second request's creation


async def test_filters_narrow_the_export(client: Client) -> None:
    answered, cancelled = await activity(client)
    only_request = await export_lines(client, request_id=cancelled)
    assert [line["type"] for line in only_request] == ["request.created", "request.cancelled"]
    only_type = await export_lines(client, types="request.created")
    assert {line["stream"] for line in only_type} == {
        f"request-{answered}",
        f"request-{cancelled}",
    }
    by_session = await export_lines(client, session_id=README_SESSION["session_id"])
    assert len(by_session) == 5
    assert await export_lines(client, session_id="another") == []
    later = (await export_lines(client))[-1]["recorded_at"]
    assert [line["type"] for line in await export_lines(client, since=later)] == [
        "request.cancelled"
    ]
    assert len(await export_lines(client, until=later)) == 4
    assert await export_lines(client, since="2999-01-01") == []


async def test_the_csv_export_quotes_what_needs_quoting(client: Client) -> None:
    await activity(client)
    response = await client.get("/v1/audit/export", params={"format": "csv"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert 'filename="loopgate-audit-' in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await response.read()).decode())))
    assert tuple(rows[0]) == CSV_COLUMNS
    created = dict(zip(CSV_COLUMNS, rows[2], strict=True))
    assert created["type"] == "request.created"
    assert msgspec.json.decode(created["data"])["message"] == TRICKY


async def test_an_empty_csv_export_still_has_its_header(client: Client) -> None:
    response = await client.get("/v1/audit/export", params={"format": "csv"})
    assert (await response.read()).decode().splitlines() == [",".join(CSV_COLUMNS)]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"format": "xml"}, "format"),
        ({"since": "yesterday"}, "since"),
        ({"types": "request.created,request.bogus"}, "request.bogus"),
    ],
)
async def test_bad_export_parameters_are_400s(
    client: Client, query: dict[str, str], fragment: str
) -> None:
    message = await assert_error(
        await client.get("/v1/audit/export", params=query), 400, "validation_failed"
    )
    assert fragment in message


async def test_the_history_tells_the_requests_story(client: Client) -> None:
    answered, cancelled = await activity(client)
    response = await client.get(f"/v1/requests/{answered}/history")
    assert response.status == 200
    story = await response.json()
    assert story["status"] == "answered"
    created, decided = story["timeline"]
    assert created["summary"] == f"anonymous asked: {TRICKY!r}"
    assert created["details"]["options"] == README_REQUEST["options"]
    assert decided["summary"] == "anonymous answered '🚀 Deploy' on api: approved"
    assert decided["channel"] == "api"
    withdrawn = await (await client.get(f"/v1/requests/{cancelled}/history")).json()
    assert withdrawn["timeline"][-1]["summary"] == "cancelled by anonymous"


async def test_tenants_see_only_their_own_events(app_client: AppClientFactory) -> None:
    client = await app_client(require_api_key="true")
    alice, bob = await sign_up(client, "alice"), await sign_up(client, "bob")
    alice_key = api_key((await new_key(client, alice, label="a"))["raw_key"])
    bob_key = api_key((await new_key(client, bob, label="b"))["raw_key"])
    await client.post(
        "/v1/sessions", json={"session_id": "a1", "client_id": "x"}, headers=alice_key
    )
    made = await client.post(
        "/v1/requests",
        json={"session_id": "a1", "client_id": "x", "message": "alice's"},
        headers=alice_key,
    )
    request_id = (await made.json())["request_id"]

    bobs = await client.get("/v1/audit/export", headers=bob.bearer)
    alices = await client.get("/v1/audit/export", headers=alice.bearer)
    alices_lines = [msgspec.json.decode(x) for x in (await alices.read()).splitlines()]
    assert {line["tenant"] for line in alices_lines} == {alice.user_id}
    # Her account's events (sign-up, log-in, key) and her session's.
    assert [line["type"] for line in alices_lines][-2:] == ["session.registered", "request.created"]
    assert all(
        msgspec.json.decode(x)["tenant"] == bob.user_id for x in (await bobs.read()).splitlines()
    )
    assert (
        b"alice's"
        not in await (
            await client.get("/v1/audit/export", headers=bob_key, params={"request_id": request_id})
        ).read()
    )
    await assert_error(
        await client.get(f"/v1/requests/{request_id}/history", headers=bob_key),
        404,
        "request_not_found",
    )
    assert (await client.get("/v1/audit/export")).status == 401


async def test_an_agent_key_cannot_export_but_an_operator_key_and_a_login_token_can(
    app_client: AppClientFactory,
) -> None:
    client = await app_client(require_api_key="true")
    alice = await sign_up(client, "alice")
    agent = api_key((await new_key(client, alice, label="bot"))["raw_key"])
    operator = api_key((await new_key(client, alice, label="me", kind="operator"))["raw_key"])

    refused = await client.get("/v1/audit/export", headers=agent)
    await assert_error(refused, 403, "agent_cannot_export")
    for person in (operator, alice.bearer):
        response = await client.get("/v1/audit/export", headers=person)
        assert response.status == 200, await response.text()
        assert b'"user.registered"' in await response.read()
