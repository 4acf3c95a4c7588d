"""GET and PUT /v1/policy, and the console's policy page, on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from account_helpers import Client, User, api_key, new_key
from console_helpers import sign_in, text_of
from teams_helpers import add_member, first_owner

PAYMENTS = {
    "name": "payments",
    "when": [{"field": "metadata.amount", "op": "gte", "value": 10000}],
    "then": {"approvers": ["group:finance"], "quorum": 2},
}
STAGING = {
    "name": "staging",
    "when": [{"field": "session_id", "op": "glob", "value": "staging-*"}],
    "then": {"decide": "approve", "reason": "staging needs nobody"},
}


@pytest.fixture
async def team(keyed_client: Client) -> dict[str, User]:
    owner = await first_owner(keyed_client)
    return {
        "owner": owner,
        "admin": await add_member(keyed_client, owner, "ada", "admin"),
        "approver": await add_member(keyed_client, owner, "bob", "approver"),
        "auditor": await add_member(keyed_client, owner, "aud", "auditor"),
    }


async def put(client: Client, user: User, body: Any, status: int = 200) -> dict[str, Any]:
    response = await client.put("/v1/policy", json=body, headers=user.bearer)
    assert response.status == status, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_a_workspace_never_set_reads_version_zero(
    keyed_client: Client, team: dict[str, User]
) -> None:
    response = await keyed_client.get("/v1/policy", headers=team["auditor"].bearer)
    assert response.status == 200
    assert await response.json() == {"version": 0, "rules": [], "set_by": None, "set_at": None}


async def test_an_admin_sets_the_rules_and_every_member_and_key_reads_them(
    keyed_client: Client, team: dict[str, User]
) -> None:
    admin = team["admin"]
    answer = await put(keyed_client, admin, {"rules": [PAYMENTS, STAGING]})
    assert answer["version"] == 1 and answer["set_by"] == admin.user_id
    assert answer["rules"] == [PAYMENTS, STAGING] and answer["set_at"]
    agent = await new_key(keyed_client, team["approver"], label="agent", kind="agent")
    for headers in (team["auditor"].bearer, api_key(agent["raw_key"])):
        read = await keyed_client.get("/v1/policy", headers=headers)
        assert read.status == 200 and await read.json() == answer

    again = await put(keyed_client, team["owner"], {"rules": [STAGING], "expected_version": 1})
    assert (again["version"], again["rules"]) == (2, [STAGING])


async def test_a_stale_expected_version_is_409(keyed_client: Client, team: dict[str, User]) -> None:
    await put(keyed_client, team["owner"], {"rules": [PAYMENTS]})
    answer = await put(keyed_client, team["owner"], {"rules": [], "expected_version": 0}, 409)
    assert answer["error"]["code"] == "policy_version_conflict"
    read = await keyed_client.get("/v1/policy", headers=team["owner"].bearer)
    assert (await read.json())["rules"] == [PAYMENTS]


@pytest.mark.parametrize(
    ("rules", "code", "words"),
    [
        ([PAYMENTS, {**STAGING, "name": "payments"}], "invalid_policy", "rules[1] ('payments')"),
        ([{**PAYMENTS, "then": {"quorum": 0}}], "invalid_policy", "quorum must be 1 or more"),
        (
            [{**PAYMENTS, "when": [{"field": "amount", "op": "gte", "value": 1}]}],
            "invalid_policy",
            "unknown field 'amount'",
        ),
        ([{**STAGING, "then": {"decide": "approve", "quorum": 2}}], "invalid_policy", "decide"),
        ([{**PAYMENTS, "then": {"quorum": 2, "colour": "red"}}], "validation_failed", "colour"),
        ([{**PAYMENTS, "priority": 1}], "validation_failed", "priority"),
        ([{**PAYMENTS, "when": [{"field": "x", "op": "like"}]}], "validation_failed", "op"),
        ([{"name": "no-then"}], "validation_failed", "then"),
    ],
)
async def test_a_bad_rule_is_400_naming_it(
    keyed_client: Client, team: dict[str, User], rules: list[Any], code: str, words: str
) -> None:
    answer = await put(keyed_client, team["owner"], {"rules": rules}, 400)
    assert answer["error"]["code"] == code and words in answer["error"]["message"]
    read = await keyed_client.get("/v1/policy", headers=team["owner"].bearer)
    assert (await read.json())["version"] == 0


async def test_malformed_json_and_a_missing_list_are_400(
    keyed_client: Client, team: dict[str, User]
) -> None:
    headers = {**team["owner"].bearer, "Content-Type": "application/json"}
    for raw, code in ((b'{"rules": [', "invalid_json"), (b"{}", "validation_failed")):
        response = await keyed_client.put("/v1/policy", data=raw, headers=headers)
        assert response.status == 400
        assert (await response.json())["error"]["code"] == code


@pytest.mark.parametrize("role", ["approver", "auditor"])
async def test_an_approver_or_auditor_may_not_set_it(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    answer = await put(keyed_client, team[role], {"rules": [PAYMENTS]}, 403)
    assert answer["error"]["code"] == "role_forbids"


async def test_an_owners_agent_key_may_not_set_it_but_an_operator_key_may(
    keyed_client: Client, team: dict[str, User]
) -> None:
    owner = team["owner"]
    agent = await new_key(keyed_client, owner, label="agent", kind="agent")
    refused = await keyed_client.put(
        "/v1/policy", json={"rules": [PAYMENTS]}, headers=api_key(agent["raw_key"])
    )
    assert refused.status == 403
    assert (await refused.json())["error"]["code"] == "role_forbids"
    # Refused before the body is read: a malformed one is still a 403.
    headers = {**api_key(agent["raw_key"]), "Content-Type": "application/json"}
    garbled = await keyed_client.put("/v1/policy", data=b"{", headers=headers)
    assert garbled.status == 403
    operator = await new_key(keyed_client, owner, label="ops", kind="operator")
    allowed = await keyed_client.put(
        "/v1/policy", json={"rules": [PAYMENTS]}, headers=api_key(operator["raw_key"])
    )
    assert allowed.status == 200, await allowed.text()
    assert (await allowed.json())["set_by"] == f"apikey:{operator['id']}"


# --- the console page ---------------------------------------------------------------------


async def test_every_role_sees_the_rules_on_the_console(
    keyed_client: Client, team: dict[str, User]
) -> None:
    for user in team.values():  # before any policy: the page says so
        keyed_client.session.cookie_jar.clear()
        assert (await sign_in(keyed_client, user.username)).status == 303
        page = await keyed_client.get("/console/policy")
        assert page.status == 200
        assert "No policy yet" in text_of(await page.text())
    await put(keyed_client, team["admin"], {"rules": [PAYMENTS, STAGING]})
    for user in team.values():
        keyed_client.session.cookie_jar.clear()
        assert (await sign_in(keyed_client, user.username)).status == 303
        page = await keyed_client.get("/console/policy")
        assert page.status == 200
        html = await page.text()
        text = text_of(html)
        assert 'href="/console/policy" aria-current="page"' in html
        assert "Version 1" in text and team["admin"].username in text
        assert "metadata.amount gte 10000" in text and "approvers group:finance, quorum 2" in text
        assert 'session_id glob "staging-*"' in text
        assert "decide approve (reason 'staging needs nobody')" in text
        assert text.index("payments") < text.index("staging")  # in the order they are tried
