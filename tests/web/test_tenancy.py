"""Who may call what: required API keys, broken credentials, and tenants kept apart.

Tenancy is enforced by the command handlers (another tenant's session or request looks
exactly like a missing one, and a session id is the tenant's own: registering one that
another tenant uses makes a second session); these tests prove it end to end, through
HTTP, for every route that takes an id.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from account_helpers import (
    AppClientFactory,
    Client,
    FakeClock,
    User,
    api_key,
    bearer,
    new_key,
    sign_up,
    unique,
)
from aiohttp import ClientResponse
from console_helpers import agent_of
from hitl_helpers import README_REQUEST, assert_error

# --- with auth.require_api_key on ---------------------------------------------------------

AGENT_ROUTES = [
    ("POST", "/hitl/register"),
    ("POST", "/sessions/register"),
    ("POST", "/hitl/request"),
    ("GET", "/hitl/poll?request_id=x"),
    ("GET", "/hitl/status?session_id=x"),
    ("POST", "/hitl/deactivate"),
    ("GET", "/hitl/pending"),
    ("POST", "/hitl/cancel"),
    ("POST", "/v1/sessions"),
    ("GET", "/v1/sessions/x"),
    ("POST", "/v1/requests"),
    ("GET", "/v1/requests"),
    ("GET", "/v1/requests/x"),
    ("POST", "/v1/requests/x/cancel"),
    ("POST", "/v1/requests/x/response"),
]


@pytest.mark.parametrize(("method", "path"), AGENT_ROUTES)
async def test_agent_routes_need_a_key_when_keys_are_required(
    keyed_client: Client, method: str, path: str
) -> None:
    response = await keyed_client.request(method, path, json={})
    await assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_health_checks_and_login_stay_open_when_keys_are_required(
    keyed_client: Client,
) -> None:
    for path in ("/health", "/healthz", "/readyz"):
        assert (await keyed_client.get(path)).status == 200, path
    alice = await sign_up(keyed_client, "alice")  # register and login
    assert alice.token


async def test_every_way_of_sending_a_key_is_accepted(keyed_client: Client) -> None:
    alice = await sign_up(keyed_client, "alice")
    raw = (await new_key(keyed_client, alice))["raw_key"]
    for headers in (api_key(raw), bearer(raw), {"authorization": f"bearer {raw}"}, alice.bearer):
        response = await keyed_client.get("/hitl/pending", headers=headers)
        assert response.status == 200, (headers, await response.text())


@pytest.mark.parametrize(
    "headers",
    [
        api_key("lk_pub_" + "A" * 43),
        bearer("lk_pub_" + "A" * 43),
        api_key("not-even-the-prefix"),
    ],
    ids=["x-api-key", "bearer", "no-prefix"],
)
async def test_a_made_up_key_is_refused(keyed_client: Client, headers: dict[str, str]) -> None:
    response = await keyed_client.get("/hitl/pending", headers=headers)
    await assert_error(response, 401, "invalid_api_key")


async def test_an_unsigned_token_is_refused(keyed_client: Client) -> None:
    alice = await sign_up(keyed_client, "alice")
    header, payload, _ = alice.token.split(".")
    unsigned = f"eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."
    assert header != unsigned.split(".")[0]
    response = await keyed_client.get("/hitl/pending", headers=bearer(unsigned))
    await assert_error(response, 401, "invalid_token")


async def test_a_revoked_key_is_refused_on_the_next_request(keyed_client: Client) -> None:
    alice = await sign_up(keyed_client, "alice")
    key = await new_key(keyed_client, alice)
    headers = api_key(key["raw_key"])
    assert (await keyed_client.get("/hitl/pending", headers=headers)).status == 200
    revoked = await keyed_client.delete(f"/api/user/apikeys/{key['id']}", headers=alice.bearer)
    assert revoked.status == 200
    response = await keyed_client.get("/hitl/pending", headers=headers)
    await assert_error(response, 401, "api_key_revoked")


async def test_a_key_works_until_it_expires(keyed_client: Client, clock: FakeClock) -> None:
    alice = await sign_up(keyed_client, "alice")
    expires = clock.now + timedelta(seconds=60)
    key = await new_key(keyed_client, alice, expires_at=expires.isoformat())
    headers = api_key(key["raw_key"])
    assert (await keyed_client.get("/hitl/pending", headers=headers)).status == 200
    clock.advance(59)
    assert (await keyed_client.get("/hitl/pending", headers=headers)).status == 200
    clock.advance(1)
    response = await keyed_client.get("/hitl/pending", headers=headers)
    await assert_error(response, 401, "api_key_expired")


async def test_a_token_past_its_lifetime_is_refused(
    app_client: AppClientFactory, clock: FakeClock
) -> None:
    client = await app_client(require_api_key="true", token_ttl_seconds=600)
    alice = await sign_up(client, "alice")
    assert (await client.get("/hitl/pending", headers=alice.bearer)).status == 200
    clock.advance(600)
    response = await client.get("/hitl/pending", headers=alice.bearer)
    await assert_error(response, 401, "invalid_token")


# --- with keys not required (the loopback quick start) --------------------------------------


async def test_anonymous_callers_share_the_local_tenant(open_client: Client) -> None:
    session = {"session_id": "quick-start", "client_id": "agent", "telegram_id": 1}
    assert (await open_client.post("/hitl/register", json=session)).status == 200
    status = await open_client.get("/hitl/status", params={"session_id": "quick-start"})
    assert status.status == 200


async def test_a_key_still_acts_for_its_user_when_keys_are_optional(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    headers = api_key((await new_key(open_client, alice))["raw_key"])
    session_id = unique("s")
    session = {"session_id": session_id, "client_id": "agent", "telegram_id": 1}
    assert (await open_client.post("/hitl/register", json=session, headers=headers)).status == 200
    # The session is alice's: anonymous callers (tenant "local") cannot see it.
    anonymous = await open_client.get("/hitl/status", params={"session_id": session_id})
    await assert_error(anonymous, 404, "session_not_found")
    mine = await open_client.get("/hitl/status", params={"session_id": session_id}, headers=headers)
    assert mine.status == 200


@pytest.mark.parametrize(
    "headers",
    [api_key("lk_pub_made_up"), bearer("lk_pub_made_up"), bearer("a.b.c")],
    ids=["x-api-key", "bearer-key", "bearer-token"],
)
async def test_a_broken_credential_is_refused_even_when_keys_are_optional(
    open_client: Client, headers: dict[str, str]
) -> None:
    response = await open_client.get("/hitl/pending", headers=headers)
    assert response.status == 401
    # Not silently anonymous: the caller would otherwise act in the wrong tenant.


async def test_an_empty_key_header_counts_as_none(open_client: Client) -> None:
    # What `curl -H "X-API-Key: $UNSET_VARIABLE"` sends.
    response = await open_client.get("/hitl/pending", headers={"X-API-Key": ""})
    assert response.status == 200


# --- tenants: bob's key reaches none of alice's sessions or requests ------------------------


class Tenants:
    """Alice with a session and a pending request; Bob with a key of his own."""

    def __init__(self, client: Client, alice: User, bob: User, keys: dict[str, str]) -> None:
        self.client, self.alice, self.bob = client, alice, bob
        self.alice_key, self.bob_key = api_key(keys["alice"]), api_key(keys["bob"])
        self.session_id = ""
        self.request_id = ""

    async def as_bob(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        return await self.client.request(method, path, headers=self.bob_key, **kwargs)

    async def as_alice(self, method: str, path: str, **kwargs: Any) -> ClientResponse:
        return await self.client.request(method, path, headers=self.alice_key, **kwargs)


@pytest.fixture
async def tenants(keyed_client: Client) -> Tenants:
    alice, bob = await sign_up(keyed_client, "alice"), await sign_up(keyed_client, "bob")
    keys = {
        "alice": (await new_key(keyed_client, alice))["raw_key"],
        "bob": (await new_key(keyed_client, bob))["raw_key"],
    }
    world = Tenants(keyed_client, alice, bob, keys)
    world.session_id = unique("alice-deploys")
    session = {"session_id": world.session_id, "client_id": "ci", "telegram_id": 1}
    assert (await world.as_alice("POST", "/hitl/register", json=session)).status == 200
    created = await world.as_alice(
        "POST", "/hitl/request", json={**README_REQUEST, "session_id": world.session_id}
    )
    assert created.status == 200, await created.text()
    world.request_id = (await created.json())["request_id"]
    return world


BobTries = Callable[[Tenants], Awaitable[ClientResponse]]

BOB_TRIES: dict[str, tuple[BobTries, str]] = {
    "GET /v1/requests/{id}": (
        lambda t: t.as_bob("GET", f"/v1/requests/{t.request_id}"),
        "request_not_found",
    ),
    "GET /v1/requests/{id}?wait": (
        lambda t: t.as_bob("GET", f"/v1/requests/{t.request_id}?wait=5"),
        "request_not_found",
    ),
    "GET /v1/sessions/{id}": (
        lambda t: t.as_bob("GET", f"/v1/sessions/{t.session_id}"),
        "session_not_found",
    ),
    "poll": (
        lambda t: t.as_bob("GET", "/hitl/poll", params={"request_id": t.request_id}),
        "request_not_found",
    ),
    "long-poll": (
        lambda t: t.as_bob("GET", "/hitl/poll", params={"request_id": t.request_id, "wait": 5}),
        "request_not_found",
    ),
    "/hitl/cancel": (
        lambda t: t.as_bob("POST", "/hitl/cancel", json={"request_id": t.request_id}),
        "request_not_found",
    ),
    "/v1/requests/{id}/cancel": (
        lambda t: t.as_bob("POST", f"/v1/requests/{t.request_id}/cancel"),
        "request_not_found",
    ),
    "answer": (
        lambda t: t.as_bob(
            "POST", f"/v1/requests/{t.request_id}/response", json={"option": "🚀 Deploy"}
        ),
        "request_not_found",
    ),
    "/hitl/status": (
        lambda t: t.as_bob("GET", "/hitl/status", params={"session_id": t.session_id}),
        "session_not_found",
    ),
    "/hitl/deactivate": (
        lambda t: t.as_bob("POST", "/hitl/deactivate", json={"session_id": t.session_id}),
        "session_not_found",
    ),
    "post into alice's session": (
        lambda t: t.as_bob(
            "POST", "/hitl/request", json={**README_REQUEST, "session_id": t.session_id}
        ),
        "session_not_found",
    ),
    "post into alice's session on /v1": (
        lambda t: t.as_bob(
            "POST",
            "/v1/requests",
            json={**README_REQUEST, "session_id": t.session_id},
        ),
        "session_not_found",
    ),
}


@pytest.mark.parametrize("attempt", BOB_TRIES.values(), ids=BOB_TRIES.keys())
async def test_bob_cannot_reach_alices_session_or_request(
    tenants: Tenants, attempt: tuple[BobTries, str]
) -> None:
    tries, code = attempt
    response = await tries(tenants)
    await assert_error(response, 404, code)
    # Nothing of alice's changed, and her own poll still works.
    poll = await tenants.as_alice("GET", "/hitl/poll", params={"request_id": tenants.request_id})
    assert poll.status == 200
    assert (await poll.json())["status"] == "pending"
    status = await tenants.as_alice(
        "GET", "/hitl/status", params={"session_id": tenants.session_id}
    )
    assert (await status.json())["active"] is True


async def test_bob_registering_alices_session_id_gets_a_session_of_his_own(
    tenants: Tenants,
) -> None:
    # Session ids are per tenant: no takeover, and nothing tells Bob hers exists.
    mine = {"session_id": tenants.session_id, "client_id": "bobs-ci", "telegram_id": 2}
    registered = await tenants.as_bob("POST", "/hitl/register", json=mine)
    assert registered.status == 200, await registered.text()
    bobs = await (await tenants.as_bob("GET", f"/v1/sessions/{tenants.session_id}")).json()
    alices = await (await tenants.as_alice("GET", f"/v1/sessions/{tenants.session_id}")).json()
    assert (bobs["client_id"], bobs["telegram_id"]) == ("bobs-ci", 2)
    assert (alices["client_id"], alices["telegram_id"]) == ("ci", 1)
    status = await tenants.as_bob("GET", "/hitl/status", params={"session_id": tenants.session_id})
    assert (await status.json())["pending_requests"] == 0


async def test_bob_with_a_login_token_cannot_reach_alices_request(tenants: Tenants) -> None:
    response = await tenants.client.get(
        f"/v1/requests/{tenants.request_id}", headers=tenants.bob.bearer
    )
    await assert_error(response, 404, "request_not_found")


async def test_lists_show_each_tenant_only_its_own(tenants: Tenants) -> None:
    bob_session = {"session_id": unique("bob-bot"), "client_id": "bot", "telegram_id": 2}
    assert (await tenants.as_bob("POST", "/hitl/register", json=bob_session)).status == 200
    created = await tenants.as_bob(
        "POST", "/hitl/request", json={**README_REQUEST, "session_id": bob_session["session_id"]}
    )
    bobs_request = (await created.json())["request_id"]

    for as_user, expected in (
        (tenants.as_bob, bobs_request),
        (tenants.as_alice, tenants.request_id),
    ):
        pending = await (await as_user("GET", "/hitl/pending")).json()
        assert [r["id"] for r in pending["pending_requests"]] == [expected]
        listed = await (await as_user("GET", "/v1/requests")).json()
        assert [r["request_id"] for r in listed["requests"]] == [expected]


async def test_alice_polls_her_own_request_and_a_teammate_answers_it_with_an_operator_key(
    tenants: Tenants,
) -> None:
    poll = await tenants.as_alice(
        "GET", "/hitl/poll", params={"request_id": tenants.request_id, "wait": 0}
    )
    assert poll.status == 200
    # alice's key asked, so someone else decides (four eyes).
    teammate = await agent_of(tenants.client, tenants.alice)
    operator = api_key((await new_key(tenants.client, teammate, kind="operator"))["raw_key"])
    answered = await tenants.client.post(
        f"/v1/requests/{tenants.request_id}/response",
        json={"option": "🚀 Deploy"},
        headers=operator,
    )
    assert answered.status == 200, await answered.text()
    poll = await tenants.as_alice("GET", "/hitl/poll", params={"request_id": tenants.request_id})
    body = await poll.json()
    assert (body["status"], body["approved"], body["response"]) == ("completed", True, "🚀 Deploy")
