"""The console shows a request's action, edits its args before approving, grants and revokes."""

from __future__ import annotations

import json
import re
from typing import Any

from account_helpers import Client, User
from console_helpers import SESSION, agent_of, log_size, submit, text_of

from loopgate.domain.action import fingerprint
from loopgate.events import Action
from loopgate.web.keys import REQUESTS

WIRE = {"tool": "wire_transfer", "args": {"amount": 1500000, "to": "ACME"}}
SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "integer", "maximum": 1000000}, "to": {"type": "string"}},
    "required": ["amount", "to"],
}


async def ask_action(client: Client, user: User, **fields: Any) -> dict[str, Any]:
    """The agent (``user``'s teammate) asks over ``POST /v1/requests``; the request as created."""
    body = {**SESSION, "message": "Pay ACME?", "request_type": "confirmation", **fields}
    agent = await agent_of(client, user)
    response = await client.post("/v1/requests", json=body, headers=agent.bearer)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def page(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, await response.text()
    return await response.text()


async def rest_view(client: Client, user: User, request_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/requests/{request_id}", headers=user.bearer)
    assert response.status == 200, await response.text()
    view: dict[str, Any] = await response.json()
    return view


async def test_the_card_and_the_page_show_the_tool_its_args_and_the_fingerprint(
    open_client: Client, user: User
) -> None:
    action = {
        "tool": "wire_transfer",
        "args": {**WIRE["args"], "memo": {"ref": "INV-42", "n": [1]}},
    }
    created = await ask_action(open_client, user, action=action)
    digest = created["fingerprint"]

    for html in (
        await page(open_client, "/console"),
        await page(open_client, f"/console/requests/{created['request_id']}"),
    ):
        text = text_of(html)
        assert "wire_transfer" in text
        assert re.search(r"amount 1500000 .*to ACME", text)  # key → value rows, sorted keys
        assert 'memo {"n":[1],"ref":"INV-42"}' in text  # a nested value as compact JSON
        assert f'title="{digest}"' in html and f"{digest[:12]}…" in text  # short, full on hover
    request_page = text_of(await page(open_client, f"/console/requests/{created['request_id']}"))
    assert (
        "args editor" not in request_page and "with these args" not in request_page
    )  # not editable
    assert "and allow" not in request_page  # not grantable


async def test_an_edited_amount_is_approved_and_the_page_shows_both_versions(
    open_client: Client, user: User
) -> None:
    created = await ask_action(open_client, user, action=WIRE, args_schema=SCHEMA)
    rid = created["request_id"]
    editor = await page(open_client, f"/console/requests/{rid}")
    assert "with these args" in editor and "The schema the args must match" in editor
    assert '"maximum": 1000000' in text_of(editor)  # the schema, shown as pretty JSON
    prefilled = text_of(editor.split("data-args-editor", 1)[1])
    assert prefilled.startswith(
        'data-original=\'{"amount": 1500000, "to": "ACME"}\'>{ "amount": 1500000,'
    )

    edited = json.dumps({"amount": 150000, "to": "ACME"}, indent=2)
    answered = await submit(
        open_client, f"/console/requests/{rid}/answer", option="Approve", args=edited
    )

    assert answered.status == 303, await answered.text()
    assert answered.headers["Location"] == f"/console/requests/{rid}?notice=answered"
    view = await rest_view(open_client, user, rid)
    assert view["edited"] is True and view["outcome"] == "approved"
    assert view["action"] == WIRE  # as asked
    assert view["decided_action"] == {
        "tool": "wire_transfer",
        "args": {"amount": 150000, "to": "ACME"},
    }
    approved = Action(tool="wire_transfer", args={"amount": 150000, "to": "ACME"})
    assert view["decided_fingerprint"] == fingerprint(approved)
    shown = await page(open_client, answered.headers["Location"])
    text = text_of(shown)
    assert "As asked amount 1500000 to ACME" in text
    assert "As approved, edited amount 150000 to ACME" in text
    assert "changed: amount" in text
    # The changed key is highlighted in both versions, the unchanged one in neither.
    assert (
        len(re.findall(r'<tr class="changed" data-changed>\s*<th scope="row"><code>amount<', shown))
        == 2
    )
    assert shown.count("data-changed") == 2
    assert f"{fingerprint(approved)[:12]}…" in text
    assert "with these args" not in shown  # decided: no editor any more


async def test_an_edit_the_schema_refuses_or_bad_json_is_shown_and_appends_nothing(
    open_client: Client, user: User
) -> None:
    created = await ask_action(open_client, user, action=WIRE, args_schema=SCHEMA)
    rid = created["request_id"]
    store = open_client.app[REQUESTS].store
    before = await log_size(store)

    too_much = json.dumps({"amount": 2000000, "to": "ACME"})
    refused = await submit(
        open_client, f"/console/requests/{rid}/answer", option="Approve", args=too_much
    )
    assert refused.status == 422
    body = await refused.text()
    assert "amount: 2000000 is greater than the maximum of 1000000" in text_of(body)
    kept = text_of(body.split("data-args-editor", 1)[1])
    assert '>{"amount": 2000000, "to": "ACME"}' in kept  # the editor keeps the edit

    malformed = await submit(
        open_client, f"/console/requests/{rid}/answer", option="Approve", args='{"amount": 15,'
    )
    assert malformed.status == 400
    assert "The edited args are not valid JSON" in text_of(await malformed.text())

    not_object = await submit(
        open_client, f"/console/requests/{rid}/answer", option="Approve", args="[1]"
    )
    assert not_object.status == 400
    assert "must be a JSON object" in text_of(await not_object.text())

    rejected = await submit(
        open_client,
        f"/console/requests/{rid}/answer",
        option="Reject",
        args=json.dumps(WIRE["args"]),
    )
    assert rejected.status == 422  # edited args go with an approval only

    assert await log_size(store) == before
    assert (await rest_view(open_client, user, rid))["status"] == "pending"


async def test_a_console_grant_approves_the_next_identical_request_until_revoked(
    open_client: Client, user: User
) -> None:
    first = await ask_action(open_client, user, action=WIRE, grantable=True)
    form = await page(open_client, f"/console/requests/{first['request_id']}")
    assert "Approve and allow for" in text_of(form)
    assert '<option value="1800" selected>30 min</option>' in form
    assert "any call of wire_transfer" in text_of(form)

    granted = await submit(
        open_client,
        f"/console/requests/{first['request_id']}/answer",
        option="Approve",
        grant_seconds="1800",
        grant_scope="exact",
    )

    assert granted.status == 303, await granted.text()
    (grant,) = (await (await open_client.get("/v1/grants", headers=user.bearer)).json())["grants"]
    assert grant["request_id"] == first["request_id"] and grant["scope"] == "exact"
    assert grant["issued_by"] == user.user_id
    decided = text_of(await page(open_client, granted.headers["Location"]))
    assert f"grant {grant['grant_id']}" in decided

    second = await ask_action(open_client, user, action=WIRE, grantable=True)
    assert second["status"] == "answered" and second["grant"] == grant["grant_id"]
    shown = text_of(await page(open_client, f"/console/requests/{second['request_id']}"))
    assert (
        f"Approved by standing grant {grant['grant_id']} (issued by you ({user.username}))" in shown
    )

    grants_page = await page(open_client, "/console/grants")
    text = text_of(grants_page)
    assert "wire_transfer" in text and "this exact call" in text and SESSION["session_id"] in text
    assert f"/console/grants/{grant['grant_id']}/revoke" in grants_page

    revoked = await submit(open_client, f"/console/grants/{grant['grant_id']}/revoke")

    assert revoked.status == 303 and revoked.headers["Location"] == "/console/grants?notice=revoked"
    after = text_of(await page(open_client, revoked.headers["Location"]))
    assert "The grant is revoked" in after and f"revoked by you ({user.username})" in after
    third = await ask_action(open_client, user, action=WIRE, grantable=True)
    assert third["status"] == "pending" and third["grant"] is None


async def test_a_grant_of_the_tool_scope_and_a_bad_length_are_judged_by_the_server(
    open_client: Client, user: User
) -> None:
    first = await ask_action(open_client, user, action=WIRE, grantable=True)
    store = open_client.app[REQUESTS].store
    before = await log_size(store)
    bad = await submit(
        open_client,
        f"/console/requests/{first['request_id']}/answer",
        option="Approve",
        grant_seconds="5",
    )
    assert bad.status == 400 and await log_size(store) == before
    plain = await ask_action(open_client, user, action=WIRE)
    not_grantable = await submit(
        open_client,
        f"/console/requests/{plain['request_id']}/answer",
        option="Approve",
        grant_seconds="900",
    )
    assert not_grantable.status == 422
    assert "does not allow standing grants" in text_of(await not_grantable.text())

    tool_wide = await submit(
        open_client,
        f"/console/requests/{first['request_id']}/answer",
        option="Approve",
        grant_seconds="900",
        grant_scope="tool",
    )
    assert tool_wide.status == 303
    other = {"tool": "wire_transfer", "args": {"amount": 5, "to": "Initech"}}
    assert (await ask_action(open_client, user, action=other))["status"] == "answered"
    deploy = {"tool": "deploy", "args": {}}
    assert (await ask_action(open_client, user, action=deploy))["status"] == "pending"
