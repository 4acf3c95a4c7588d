"""Requests bound to an action: fingerprints, edit before approve, standing grants (REST)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from aiohttp import web
from hitl_helpers import Client, answer, assert_error, event_types

from loopgate.config import Config
from loopgate.domain.action import fingerprint
from loopgate.events import Action, Rule
from loopgate.policies import cli_actor
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import POLICIES, REQUESTS

SESSION = {"session_id": "payments-bot", "client_id": "treasury"}
WIRE = {"tool": "wire_transfer", "args": {"amount": 1500000, "to": "ACME"}}
DEPLOY = {"tool": "deploy", "args": {"env": "staging", "version": "v2.1"}}


@pytest.fixture(autouse=True)
async def session(client: Client) -> None:
    response = await client.post("/v1/sessions", json=SESSION)
    assert response.status == 201, await response.text()


async def ask(client: Client, **fields: Any) -> dict[str, Any]:
    body = {**SESSION, "message": "Pay ACME?", "request_type": "confirmation", **fields}
    response = await client.post("/v1/requests", json=body)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def decided(client: Client, request_id: str, **body: Any) -> dict[str, Any]:
    response = await answer(client, request_id, **body)
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def test_an_action_is_fingerprinted_in_canonical_json(client: Client) -> None:
    created = await ask(client, action=WIRE)
    # Key order and number spelling do not change the fingerprint (RFC 8785).
    same = Action(tool="wire_transfer", args={"to": "ACME", "amount": 1.5e6})
    assert created["fingerprint"] == fingerprint(same)
    assert len(created["fingerprint"]) == 64 and created["fingerprint"].islower()
    assert created["action"] == WIRE
    approved = await decided(client, created["request_id"], option="Approve")
    assert approved["decided_action"] == WIRE and approved["edited"] is False
    assert approved["decided_fingerprint"] == created["fingerprint"]


async def test_a_rejection_approves_no_action(client: Client) -> None:
    created = await ask(client, action=WIRE)
    rejected = await decided(client, created["request_id"], option="Reject")
    assert rejected["outcome"] == "rejected"
    assert rejected["decided_action"] is None and rejected["decided_fingerprint"] is None


async def test_an_approver_edits_the_amount_and_the_export_shows_both(client: Client) -> None:
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer", "maximum": 1000000}, "to": {"type": "string"}},
        "required": ["amount", "to"],
    }
    created = await ask(client, action=WIRE, args_schema=schema)
    assert created["editable"] is True  # a schema implies it
    edited_args = {"amount": 150000, "to": "ACME"}

    result = await decided(client, created["request_id"], option="Approve", args=edited_args)

    assert result["edited"] is True
    assert result["decided_action"] == {"tool": "wire_transfer", "args": edited_args}
    assert result["action"] == WIRE  # as asked
    edited = Action(tool="wire_transfer", args=edited_args)
    assert result["decided_fingerprint"] == fingerprint(edited) != created["fingerprint"]
    export = await client.get("/v1/audit/export", params={"request_id": created["request_id"]})
    events = [json.loads(line) for line in (await export.text()).splitlines()]
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["request.created"]["action"] == WIRE
    assert by_type["request.response_received"]["action"]["args"] == edited_args
    assert by_type["request.response_received"]["edited"] is True


async def test_edits_outside_the_schema_or_the_request_are_refused(client: Client) -> None:
    schema = {"type": "object", "properties": {"amount": {"type": "integer", "maximum": 10}}}
    created = await ask(client, action=WIRE, args_schema=schema)
    rid = created["request_id"]
    before = await event_types(client.app[REQUESTS].store, f"request-{rid}")

    too_much = await answer(client, rid, option="Approve", args={"amount": 11})
    message = await assert_error(too_much, 422, "invalid_args")
    assert "amount" in message
    await assert_error(
        await answer(client, rid, option="Reject", args={"amount": 5}), 422, "edit_needs_approval"
    )
    plain = await ask(client, action=WIRE)
    await assert_error(
        await answer(client, plain["request_id"], option="Approve", args={"amount": 1}),
        422,
        "not_editable",
    )
    no_action = await ask(client)
    await assert_error(
        await answer(client, no_action["request_id"], option="Approve", args={}), 422, "no_action"
    )
    assert await event_types(client.app[REQUESTS].store, f"request-{rid}") == before


async def test_bad_actions_are_refused_at_creation(client: Client) -> None:
    body = {**SESSION, "message": "Pay?", "request_type": "confirmation"}
    big = {"tool": "t", "args": {"blob": "x" * 17000}}
    for extra, status, code in (
        ({"action": big}, 400, "validation_failed"),
        ({"action": {"tool": "", "args": {}}}, 400, "validation_failed"),
        ({"editable": True}, 400, "validation_failed"),
        ({"action": WIRE, "args_schema": {"type": "nonsense"}}, 422, "invalid_args_schema"),
    ):
        response = await client.post("/v1/requests", json={**body, **extra})
        await assert_error(response, status, code)


async def test_allow_30_minutes_then_revoke(client: Client) -> None:
    first = await ask(client, message="Deploy staging?", action=DEPLOY, grantable=True)
    granted = await decided(
        client, first["request_id"], option="Approve", grant={"seconds": 1800, "scope": "exact"}
    )
    assert granted["outcome"] == "approved"
    grants = await (await client.get("/v1/grants")).json()
    (grant,) = grants["grants"]
    assert grant["active"] is True and grant["scope"] == "exact"
    assert grant["fingerprint"] == first["fingerprint"] and grant["session_id"] == "payments-bot"

    second = await ask(client, message="Deploy staging again?", action=DEPLOY)
    assert second["outcome"] == "approved"
    assert second["decided_by"] == {
        "kind": "policy",
        "id": f"grant:{grant['grant_id']}",
        "channel": "system",
    }
    assert second["grant"] == grant["grant_id"]
    other = await ask(client, action={"tool": "deploy", "args": {"env": "production"}})
    assert other["status"] == "pending"  # scope exact: another action still asks

    revoked = await client.delete(f"/v1/grants/{grant['grant_id']}")
    assert revoked.status == 200
    assert (await revoked.json())["active"] is False
    third = await ask(client, message="Deploy staging once more?", action=DEPLOY)
    assert third["status"] == "pending" and third["decided_by"] is None
    again = await client.delete(f"/v1/grants/{grant['grant_id']}")
    assert again.status == 200
    revocations = [t for t in await event_types(client.app[REQUESTS].store) if t == "grant.revoked"]
    assert revocations == ["grant.revoked"]


async def test_a_tool_grant_covers_other_args_but_not_other_sessions(client: Client) -> None:
    first = await ask(client, action=DEPLOY, grantable=True)
    await decided(
        client, first["request_id"], option="Approve", grant={"seconds": 600, "scope": "tool"}
    )
    other_args = await ask(client, action={"tool": "deploy", "args": {"env": "qa"}})
    assert other_args["outcome"] == "approved"
    response = await client.post(
        "/v1/sessions", json={"session_id": "other-bot", "client_id": "treasury"}
    )
    assert response.status == 201
    elsewhere = await ask(client, session_id="other-bot", action=DEPLOY)
    assert elsewhere["status"] == "pending"


async def test_grants_are_refused_where_they_do_not_belong(client: Client) -> None:
    plain = await ask(client, action=DEPLOY)
    await assert_error(
        await answer(client, plain["request_id"], option="Approve", grant={"seconds": 600}),
        422,
        "not_grantable",
    )
    grantable = await ask(client, action=DEPLOY, grantable=True)
    await assert_error(
        await answer(client, grantable["request_id"], option="Reject", grant={"seconds": 600}),
        422,
        "grant_needs_approval",
    )
    await assert_error(
        await answer(client, grantable["request_id"], option="Approve", grant={"seconds": 5}),
        400,
        "validation_failed",
    )
    await assert_error(await client.delete("/v1/grants/nope"), 404, "grant_not_found")
    assert (await (await client.get("/v1/grants")).json())["grants"] == []


async def test_an_expired_grant_no_longer_applies(client: Client) -> None:
    requests = client.app[REQUESTS]
    first = await ask(client, action=DEPLOY, grantable=True)
    await decided(client, first["request_id"], option="Approve", grant={"seconds": 60})
    start = requests.clock()
    requests.clock = lambda: start.replace(year=start.year + 1)
    later = await ask(client, action=DEPLOY)
    assert later["status"] == "pending"


async def test_the_history_tells_edits_and_grants_in_words(client: Client) -> None:
    first = await ask(client, action=DEPLOY, grantable=True, editable=True)
    edited = {"env": "staging", "version": "v2.2"}
    await decided(
        client, first["request_id"], option="Approve", args=edited, grant={"seconds": 600}
    )
    second = await ask(client, action={"tool": "deploy", "args": edited})
    assert second["outcome"] == "approved"  # the grant is for the action as approved

    history = await (await client.get(f"/v1/requests/{first['request_id']}/history")).json()
    summaries = [entry["summary"] for entry in history["timeline"]]
    assert any("with the action's args edited: approved" in s for s in summaries), summaries
    assert any(
        "allowed deploy exactly as approved for session payments-bot" in s for s in summaries
    )
    later = await (await client.get(f"/v1/requests/{second['request_id']}/history")).json()
    (decision,) = [e for e in later["timeline"] if e["type"] == "request.response_received"]
    assert decision["summary"].startswith(f"approved by standing grant {second['grant']}")
    assert decision["details"]["action"] == {"tool": "deploy", "args": edited}


async def test_a_rule_on_action_tool_makes_deploys_grantable(client: Client) -> None:
    rule = {
        "name": "deploys-may-be-granted",
        "when": [{"field": "action.tool", "op": "eq", "value": "deploy"}],
        "then": {"grantable": True},
    }
    # The open mode's anonymous caller is an approver; the owner sets policies (as the CLI does).
    rules = msgspec.convert([rule], list[Rule])
    await client.app[POLICIES].set_policy(cli_actor("local"), rules)

    deploy = await ask(client, action=DEPLOY)
    payment = await ask(client, action=WIRE)
    no_action = await ask(client, metadata={"action": {"tool": "deploy"}})

    assert deploy["grantable"] is True and deploy["policy"]["rule"] == "deploys-may-be-granted"
    assert payment["grantable"] is False and payment["policy"]["rule"] is None
    assert no_action["grantable"] is False  # matched by metadata.action.tool, nothing to grant
    await decided(client, deploy["request_id"], option="Approve", grant={"seconds": 600})
    again = await ask(client, action=DEPLOY)
    assert again["decided_by"]["id"].startswith("grant:")


async def test_a_revocation_in_one_process_stops_the_grant_in_another(
    client: Client,
    open_test_store: Callable[[], Awaitable[EventStore]],
    aiohttp_client: Callable[[web.Application], Awaitable[Client]],
    config: Config,
) -> None:
    other = await aiohttp_client(create_app(config, store=await open_test_store()))
    first = await ask(client, action=DEPLOY, grantable=True)
    await decided(client, first["request_id"], option="Approve", grant={"seconds": 600})
    assert (await ask(other, action=DEPLOY))["outcome"] == "approved"  # the grant, over there

    (grant,) = (await (await other.get("/v1/grants")).json())["grants"]
    assert (await client.delete(f"/v1/grants/{grant['grant_id']}")).status == 200

    waiting = await ask(other, action=DEPLOY)
    assert waiting["status"] == "pending" and waiting["grant"] is None
