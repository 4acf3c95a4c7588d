"""API key kinds: an agent key never answers, an operator key answers as its user."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from account_helpers import Client, User, api_key, list_keys, new_key, sign_up, unique
from console_helpers import agent_of, operator, submit, text_of
from hitl_helpers import DEPLOY, HOLD, README_REQUEST, assert_error, event_types

from loopgate.events import AnswerRefused, ResponseReceived
from loopgate.store.base import EventStore


class Agent:
    """A user, one of their keys, and a pending request that key asked."""

    def __init__(self, client: Client, user: User, key: dict[str, Any], request_id: str) -> None:
        self.client, self.user, self.key, self.request_id = client, user, key, request_id
        self.headers = api_key(key["raw_key"])

    async def answer(self, headers: dict[str, str], option: str = DEPLOY) -> Any:
        return await self.client.post(
            f"/v1/requests/{self.request_id}/response", json={"option": option}, headers=headers
        )

    async def get(self, **query: Any) -> dict[str, Any]:
        response = await self.client.get(
            f"/v1/requests/{self.request_id}", params=query, headers=self.headers
        )
        assert response.status == 200, await response.text()
        found: dict[str, Any] = await response.json()
        return found


async def agent_with_request(client: Client, user: User, **key_body: Any) -> Agent:
    """The key (of ``key_body``'s kind) of ``user``'s teammate who runs the agent
    registers a session and asks one request, for ``user`` to answer (four eyes)."""
    key = await new_key(client, await agent_of(client, user), **key_body)
    headers = api_key(key["raw_key"])
    session = {"session_id": unique("deploys"), "client_id": "ci"}
    assert (await client.post("/v1/sessions", json=session, headers=headers)).status == 201
    created = await client.post("/v1/requests", json={**README_REQUEST, **session}, headers=headers)
    assert created.status == 201, await created.text()
    return Agent(client, user, key, (await created.json())["request_id"])


@pytest.fixture
async def agent(keyed_client: Client) -> Agent:
    """Alice's agent key (the default kind) with its own pending request."""
    return await agent_with_request(keyed_client, await sign_up(keyed_client, "alice"))


# --- agent keys ---------------------------------------------------------------------------


async def test_an_agent_key_answering_its_own_request_is_refused_and_recorded(
    agent: Agent, store: EventStore
) -> None:
    response = await agent.answer(agent.headers)

    await assert_error(response, 403, "agent_cannot_answer")
    records = await store.read_stream(f"request-{agent.request_id}")
    refused = records[-1]
    assert isinstance(refused.event, AnswerRefused)
    assert (refused.event.responder, refused.event.channel) == (
        f"apikey:{agent.key['id']}",
        "api",
    )
    assert refused.meta.actor == f"apikey:{agent.key['id']}"
    assert refused.meta.tenant == agent.user.user_id
    assert not any(isinstance(r.event, ResponseReceived) for r in records)
    found = await agent.get()
    assert (found["status"], found["decided_by"], found["approved"]) == ("pending", None, None)


async def test_a_refused_agent_answer_leaves_its_long_poll_waiting_for_a_human(
    agent: Agent,
) -> None:
    waiting = asyncio.create_task(agent.get(wait=10))
    await asyncio.sleep(0.3)  # the long-poll is parked on the hub

    await assert_error(await agent.answer(agent.headers), 403, "agent_cannot_answer")
    await asyncio.sleep(0.5)  # the refusal woke it; it re-read and went back to waiting
    assert not waiting.done()

    human = await agent.answer(agent.user.bearer, option=HOLD)
    assert human.status == 200, await human.text()
    decided = await asyncio.wait_for(waiting, 5)
    assert (decided["status"], decided["approved"]) == ("answered", False)
    assert decided["decided_by"]["id"] == agent.user.user_id


# --- operator keys, people and the open mode ------------------------------------------------


async def test_an_operator_key_answers_as_the_user_who_made_it(
    keyed_client: Client, store: EventStore
) -> None:
    alice = await sign_up(keyed_client, "alice")
    agent = await agent_with_request(keyed_client, alice)
    key = await new_key(keyed_client, alice, label="on-call", kind="operator")
    assert key["kind"] == "operator"

    response = await agent.answer(api_key(key["raw_key"]))

    assert response.status == 200, await response.text()
    body = await response.json()
    assert (body["status"], body["approved"]) == ("answered", True)
    assert body["decided_by"] == {
        "kind": "human",
        "id": alice.user_id,
        "channel": "api",
        "routed_by": "role:approver",  # the default: the workspace's approvers (owners count)
    }
    (decision,) = [
        r
        for r in await store.read_stream(f"request-{agent.request_id}")
        if isinstance(r.event, ResponseReceived)
    ]
    assert isinstance(decision.event, ResponseReceived)
    assert decision.event.responder == alice.user_id
    assert decision.meta.actor == f"apikey:{key['id']}"  # which key it was stays in the log


async def test_another_tenants_operator_key_cannot_find_the_request(
    agent: Agent, store: EventStore
) -> None:
    bob = await sign_up(agent.client, "bob")
    bobs = api_key((await new_key(agent.client, bob, kind="operator"))["raw_key"])
    head = await store.head()

    await assert_error(await agent.answer(bobs), 404, "request_not_found")

    assert await store.head() == head
    assert (await agent.get())["status"] == "pending"


async def test_a_login_token_still_answers_as_its_user(agent: Agent) -> None:
    response = await agent.answer(agent.user.bearer)

    assert response.status == 200, await response.text()
    assert (await response.json())["decided_by"]["id"] == agent.user.user_id


async def test_the_anonymous_caller_answers_in_the_open_loopback_mode(
    open_client: Client, store: EventStore
) -> None:
    session = {"session_id": unique("quick-start"), "client_id": "curl"}
    assert (await open_client.post("/v1/sessions", json=session)).status == 201
    created = await open_client.post("/v1/requests", json={**README_REQUEST, **session})
    request_id = (await created.json())["request_id"]

    response = await open_client.post(
        f"/v1/requests/{request_id}/response", json={"option": DEPLOY}
    )

    assert response.status == 200, await response.text()
    assert (await response.json())["decided_by"]["id"] == "anonymous"
    assert "request.answer_refused" not in await event_types(store, f"request-{request_id}")


# --- creating and listing keys --------------------------------------------------------------


async def test_keys_are_agent_keys_unless_made_operator_keys(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")
    plain = await new_key(open_client, alice, label="ci")
    bare = await open_client.post("/api/user/apikeys", headers=alice.bearer)
    oncall = await new_key(open_client, alice, label="on-call", kind="operator")

    assert (plain["kind"], (await bare.json())["kind"], oncall["kind"]) == (
        "agent",
        "agent",
        "operator",
    )
    listed = {key["label"]: key["kind"] for key in await list_keys(open_client, alice)}
    assert listed == {"ci": "agent", "default": "agent", "on-call": "operator"}


async def test_an_unknown_key_kind_is_a_400_naming_the_field(open_client: Client) -> None:
    alice = await sign_up(open_client, "alice")

    response = await open_client.post(
        "/api/user/apikeys", json={"label": "x", "kind": "bogus"}, headers=alice.bearer
    )

    message = await assert_error(response, 400, "validation_failed")
    assert "kind" in message and "bogus" in message
    assert await list_keys(open_client, alice) == []


async def test_the_console_makes_agent_keys_by_default_and_operator_keys_when_asked(
    open_client: Client,
) -> None:
    await operator(open_client)
    page = await (await open_client.get("/console/keys")).text()
    assert 'name="kind" value="agent" checked' in page

    plain = await submit(open_client, "/console/keys", label="ci")
    oncall = await submit(open_client, "/console/keys", label="on-call", kind="operator")
    bogus = await submit(open_client, "/console/keys", label="odd", kind="bogus")

    assert (plain.status, oncall.status, bogus.status) == (200, 200, 400)
    assert "Operator key “on-call” created" in text_of(await oncall.text())
    assert "kind" in text_of(await bogus.text())
    listed = await (await open_client.get("/console/keys")).text()
    assert '<td data-label="Kind">agent</td>' in listed
    assert '<td data-label="Kind">operator</td>' in listed
    assert "odd" not in text_of(listed)
