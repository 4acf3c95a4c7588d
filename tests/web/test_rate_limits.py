"""Rate limits and waiter caps over HTTP, on both stores: 429 with Retry-After, nothing lost.

The app runs on a frozen clock, so a bucket refills only when the test moves
the clock: what gets through is exact, not a matter of timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from account_helpers import TEST_JWT_SECRET, Client, FakeClock, api_key, new_key, sign_up, unique
from hitl_helpers import README_REQUEST, ServeLikeServer, assert_error, event_types
from waiting import eventually

from loopgate.config import AuthConfig, Config, LimitsConfig, StreamConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import HUB

Limited = Callable[..., Awaitable[Client]]


@pytest.fixture
def limited(
    aiohttp_client: Callable[..., Awaitable[Client]],
    store: EventStore,
    config: Config,
    clock: FakeClock,
) -> Limited:
    """A client of the app with API keys required and ``limits`` set as given."""

    async def factory(**limits: Any) -> Client:
        changed = msgspec.structs.replace(
            config,
            limits=LimitsConfig(**{"create_rate": 0, "answer_rate": 0, "login_rate": 0, **limits}),
            auth=AuthConfig(jwt_secret=TEST_JWT_SECRET, require_api_key="true"),
        )
        return await aiohttp_client(create_app(changed, store=store, clock=clock))

    return factory


async def agent_key(client: Client, name: str, **key: Any) -> tuple[dict[str, str], str]:
    """A new user's key and a session it registered."""
    headers = api_key((await new_key(client, await sign_up(client, name), **key))["raw_key"])
    session = unique("deploys")
    registered = await client.post(
        "/v1/sessions", json={"session_id": session, "client_id": "ci"}, headers=headers
    )
    assert registered.status == 201, await registered.text()
    return headers, session


async def test_200_creations_at_once_get_the_burst_the_rest_429_others_unaffected(
    limited: Limited, store: EventStore
) -> None:
    client = await limited(create_rate=50, create_burst=50)
    busy, busy_session = await agent_key(client, "busy")
    calm, calm_session = await agent_key(client, "calm")
    before = (await event_types(store)).count("request.created")

    body = {**README_REQUEST, "session_id": busy_session}
    responses = await asyncio.gather(
        *(client.post("/hitl/request", json=body, headers=busy) for _ in range(200))
    )
    statuses = [r.status for r in responses]
    assert (statuses.count(200), statuses.count(429)) == (50, 150)
    refused = next(r for r in responses if r.status == 429)
    message = await assert_error(refused, 429, "rate_limited")
    assert "at most 50 at once" in message
    assert int(refused.headers["Retry-After"]) == 1  # one token at 50 a second
    # Nothing of the refused ones reached the log.
    assert (await event_types(store)).count("request.created") == before + 50

    # Another key creates, and a read answers, while the busy key waits.
    other = await client.post(
        "/v1/requests", json={**README_REQUEST, "session_id": calm_session}, headers=calm
    )
    assert other.status == 201, await other.text()
    assert (await client.get("/v1/requests", headers=busy)).status == 200


async def test_a_refused_key_is_let_through_again_once_its_bucket_refills(
    limited: Limited, clock: FakeClock
) -> None:
    client = await limited(create_rate=2, create_burst=1)
    headers, session = await agent_key(client, "ci")
    body = {**README_REQUEST, "session_id": session}
    assert (await client.post("/v1/requests", json=body, headers=headers)).status == 201
    await assert_error(
        await client.post("/v1/requests", json=body, headers=headers), 429, "rate_limited"
    )
    clock.advance(0.5)
    assert (await client.post("/v1/requests", json=body, headers=headers)).status == 201


async def test_answers_are_limited_per_caller_refusals_included(
    limited: Limited, store: EventStore
) -> None:
    client = await limited(answer_rate=1, answer_burst=2)
    agent, session = await agent_key(client, "agent")
    body = {**README_REQUEST, "session_id": session}
    ids = []
    for _ in range(3):
        created = await client.post("/v1/requests", json=body, headers=agent)
        ids.append((await created.json())["request_id"])
    # An agent key may not answer; its refusals use up its bucket all the same.
    for request_id in ids[:2]:
        refused = await client.post(
            f"/v1/requests/{request_id}/response", json={"option": "🚀 Deploy"}, headers=agent
        )
        await assert_error(refused, 403, "agent_cannot_answer")
    flood = await client.post(
        f"/v1/requests/{ids[2]}/response", json={"option": "🚀 Deploy"}, headers=agent
    )
    await assert_error(flood, 429, "rate_limited")
    assert "request.answer_refused" not in await event_types(store, f"request-{ids[2]}")


async def test_logins_are_limited_per_address_before_any_password_is_checked(
    limited: Limited, store: EventStore
) -> None:
    client = await limited(login_rate=1, login_burst=3)
    username = unique("alice")
    registered = await client.post(
        "/api/auth/register", json={"username": username, "password": "a long passphrase"}
    )
    assert registered.status == 201
    bad = {"username": username, "password": "not it at all"}
    for _ in range(3):
        assert (await client.post("/api/auth/login", json=bad)).status == 401
    before = await event_types(store)
    refused = await client.post("/api/auth/login", json=bad)
    await assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) == 1
    assert await event_types(store) == before  # no failure recorded for it


async def test_a_workspace_over_its_waiter_cap_gets_429_and_the_slot_comes_back(
    store: EventStore, config: Config, clock: FakeClock
) -> None:
    changed = msgspec.structs.replace(
        config,
        limits=LimitsConfig(
            create_rate=0, answer_rate=0, login_rate=0, max_waiters_per_workspace=1
        ),
        auth=AuthConfig(jwt_secret=TEST_JWT_SECRET),
        # An event stream notices a hang-up at its next heartbeat.
        stream=StreamConfig(heartbeat_seconds=1),
    )
    app = create_app(changed, store=store, clock=clock)
    # As `loopgate serve` runs handlers: a hang-up is noticed by the wait itself.
    async with ServeLikeServer(app) as server, aiohttp.ClientSession() as http:
        hub = app[HUB]
        await http.post(
            server.make_url("/hitl/register"),
            json={"session_id": "s", "client_id": "c", "telegram_id": 1},
        )
        created = await http.post(
            server.make_url("/hitl/request"), json={**README_REQUEST, "session_id": "s"}
        )
        request_id = (await created.json())["request_id"]
        poll = server.make_url(f"/hitl/poll?request_id={request_id}&wait=10")

        parked = asyncio.create_task(http.get(poll))
        await eventually(lambda: hub.parked == 1)
        second = await http.get(poll)
        await assert_error(second, 429, "too_many_waiters")
        assert second.headers["Retry-After"] == "1"
        events = await http.get(server.make_url(f"/v1/requests/{request_id}/events"))
        await assert_error(events, 429, "too_many_waiters")
        # A poll without wait holds nothing open and is never refused.
        assert (
            await http.get(server.make_url(f"/hitl/poll?request_id={request_id}"))
        ).status == 200

        parked.cancel()  # the client hangs up
        await eventually(lambda: hub.parked == 0, within=5)
        stream = await http.get(server.make_url(f"/v1/requests/{request_id}/events"))
        assert stream.status == 200
        await eventually(lambda: hub.parked == 1)
        stream.close()
        await eventually(lambda: hub.parked == 0, within=5)
