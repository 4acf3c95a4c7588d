"""Loopgate's own ``/v1`` API, and idempotent creation on both surfaces, on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hitl_helpers import (
    CURL_REQUEST,
    DEPLOY,
    HOLD,
    README_REQUEST,
    Client,
    answer,
    assert_error,
    create,
    event_types,
    register,
)

from loopgate.store.base import EventStore

SESSION = {"session_id": "console-only", "client_id": "agent-7"}


async def create_v1(client: Client, **fields: Any) -> dict[str, Any]:
    body = {**README_REQUEST, "session_id": "console-only", "client_id": "agent-7", **fields}
    response = await client.post("/v1/requests", json=body)
    assert response.status == 201, await response.text()
    result: dict[str, Any] = await response.json()
    return result


async def get_v1(client: Client, request_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/requests/{request_id}")
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


@pytest.fixture
async def session(client: Client) -> dict[str, Any]:
    """A session registered on /v1, without a Telegram operator."""
    response = await client.post("/v1/sessions", json=SESSION)
    assert response.status == 201, await response.text()
    result: dict[str, Any] = await response.json()
    return result


# --- sessions -------------------------------------------------------------------


async def test_a_session_needs_no_telegram_operator(
    client: Client, session: dict[str, Any]
) -> None:
    assert session["session_id"] == "console-only"
    assert session["client_id"] == "agent-7"
    assert session["telegram_id"] is None
    assert session["active"] is True
    assert session["registered_at"]

    again = await client.post("/v1/sessions", json=SESSION)
    assert again.status == 200
    assert await again.json() == session

    fetched = await client.get("/v1/sessions/console-only")
    assert fetched.status == 200
    assert await fetched.json() == session


async def test_a_session_with_an_operator_and_a_conflicting_one(
    client: Client, store: EventStore
) -> None:
    response = await client.post("/v1/sessions", json={**SESSION, "telegram_id": 42})
    assert response.status == 201
    assert (await response.json())["telegram_id"] == 42
    head = await store.head()
    conflict = await client.post("/v1/sessions", json={**SESSION, "telegram_id": 43})
    await assert_error(conflict, 409, "session_exists")
    assert await store.head() == head


async def test_an_unknown_session_is_404(client: Client) -> None:
    await assert_error(await client.get("/v1/sessions/nobody"), 404, "session_not_found")


# --- requests -------------------------------------------------------------------


async def test_create_and_get_a_request(client: Client, session: dict[str, Any]) -> None:
    created = await create_v1(client, timeout_seconds=600, on_timeout="approve")
    assert created["status"] == "pending"
    assert created["completed"] is False
    assert created["approved"] is None
    assert created["response"] is None
    assert created["outcome"] is None
    assert created["decided_by"] is None
    assert created["request_type"] == "choice"
    assert [o["label"] for o in created["options"]] == README_REQUEST["options"]
    assert created["metadata"] == README_REQUEST["metadata"]
    assert created["timeout_seconds"] == 600
    assert created["on_timeout"] == "approve"
    assert created["expires_at"] > created["created_at"]
    # The single-request read also names the members its approvers reach (none yet).
    assert await get_v1(client, created["request_id"]) == created | {"routed_to": []}


@pytest.mark.parametrize(
    ("body", "outcome", "approved"),
    [
        ({"option": DEPLOY}, "approved", True),
        ({"option": HOLD}, "rejected", False),
    ],
)
async def test_a_human_answer_is_reported_as_such(
    client: Client, session: dict[str, Any], body: dict[str, str], outcome: str, approved: bool
) -> None:
    request_id = (await create_v1(client))["request_id"]
    response = await answer(client, request_id, **body)
    assert response.status == 200
    answered = await response.json()
    assert answered | {"routed_to": []} == await get_v1(client, request_id)
    assert answered["status"] == "answered"
    assert answered["completed"] is True
    assert answered["outcome"] == outcome
    assert answered["approved"] is approved
    assert answered["response"] == body["option"]
    assert answered["decided_by"] == {"kind": "human", "id": "anonymous", "channel": "api"}
    assert answered["decided_at"]


async def test_a_free_text_answer_is_answered(client: Client, session: dict[str, Any]) -> None:
    request_id = (await create_v1(client, options=[], message="Which branch?"))["request_id"]
    assert (await answer(client, request_id, text="release/2.1")).status == 200
    answered = await get_v1(client, request_id)
    assert answered["request_type"] == "input"
    assert answered["outcome"] == "answered"
    assert answered["approved"] is True
    assert answered["response"] == "release/2.1"
    assert answered["decided_by"]["kind"] == "human"


async def test_a_cancelled_request_is_the_agents_decision(
    client: Client, session: dict[str, Any]
) -> None:
    request_id = (await create_v1(client))["request_id"]
    response = await client.post(
        f"/v1/requests/{request_id}/cancel", json={"reason": "superseded by v2.1.1"}
    )
    assert response.status == 200
    cancelled = await response.json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["outcome"] == "cancelled"
    assert cancelled["completed"] is True
    assert cancelled["decided_by"] == {"kind": "agent", "id": "anonymous", "channel": "api"}
    assert cancelled["response"] is None
    again = await client.post(f"/v1/requests/{request_id}/cancel")
    assert again.status == 200
    assert await again.json() == cancelled


async def test_list_filters_by_status_and_session(client: Client, session: dict[str, Any]) -> None:
    await register(client)  # a second session, production-deploy-bot
    answered = (await create_v1(client))["request_id"]
    waiting = (await create_v1(client))["request_id"]
    other = await create(client)
    assert (await answer(client, answered, option=DEPLOY)).status == 200

    async def listed(**query: str) -> list[str]:
        response = await client.get("/v1/requests", params=query)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["next_cursor"] is None
        return [r["request_id"] for r in body["requests"]]

    assert await listed() == [other, waiting, answered]
    assert await listed(status="answered") == [answered]
    assert await listed(status="pending") == [other, waiting]
    assert await listed(status="pending,answered", session_id="console-only") == [
        waiting,
        answered,
    ]
    assert await listed(session_id="production-deploy-bot") == [other]
    assert await listed(session_id="nobody") == []


async def test_list_pages_with_a_cursor_newest_first(
    client: Client, session: dict[str, Any]
) -> None:
    created = [(await create_v1(client, message=f"step {i}"))["request_id"] for i in range(5)]
    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/requests", params=query)
        assert response.status == 200, await response.text()
        body = await response.json()
        pages += 1
        assert len(body["requests"]) <= 2
        seen += [r["request_id"] for r in body["requests"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        assert pages < 10
    assert seen == created[::-1]
    assert pages == 3


@pytest.mark.parametrize(
    "query",
    [{"cursor": "not-a-cursor!"}, {"cursor": "Zm9v"}, {"status": "done"}, {"limit": "0"}],
)
async def test_bad_list_parameters_are_400(client: Client, query: dict[str, str]) -> None:
    response = await client.get("/v1/requests", params=query)
    message = await assert_error(response, 400, "validation_failed")
    assert next(iter(query)) in message


# --- idempotency ----------------------------------------------------------------


def created_count(types: list[str]) -> int:
    return types.count("request.created")


@pytest.mark.parametrize("how", ["header", "field"])
async def test_v1_repeat_with_the_same_key_returns_the_same_request(
    client: Client, store: EventStore, session: dict[str, Any], how: str
) -> None:
    body = {**README_REQUEST, **SESSION}
    headers = {"Idempotency-Key": "deploy-2.1.0"} if how == "header" else {}
    if how == "field":
        body["idempotency_key"] = "deploy-2.1.0"

    first = await client.post("/v1/requests", json=body, headers=headers)
    assert first.status == 201
    repeat = await client.post("/v1/requests", json=body, headers=headers)
    assert repeat.status == 200
    assert (await repeat.json()) == (await first.json())
    assert created_count(await event_types(store)) == 1


@pytest.mark.parametrize("how", ["header", "field"])
async def test_hitl_repeat_with_the_same_key_returns_the_same_request(
    client: Client, store: EventStore, how: str
) -> None:
    await register(client)
    headers = {"Idempotency-Key": "retry-1"} if how == "header" else {}
    fields = {"idempotency_key": "retry-1"} if how == "field" else {}
    ids = set()
    for _ in range(2):
        response = await client.post(
            "/hitl/request", json={**README_REQUEST, **fields}, headers=headers
        )
        assert response.status == 200
        ids.add((await response.json())["request_id"])
    assert len(ids) == 1
    assert created_count(await event_types(store)) == 1


@pytest.mark.parametrize("path", ["/v1/requests", "/hitl/request"])
async def test_the_same_key_with_another_body_is_a_conflict(
    client: Client, store: EventStore, path: str
) -> None:
    await register(client)
    headers = {"Idempotency-Key": "deploy-2.1.0"}
    first = await client.post(path, json=README_REQUEST, headers=headers)
    assert first.status in (200, 201)
    head = await store.head()
    changes: list[dict[str, Any]] = [
        {"message": "Deploy v2.2.0?"},
        {"options": [DEPLOY, HOLD]},
        {"metadata": {}},
        {"timeout_seconds": 60},
    ]
    for change in changes:
        other = await client.post(path, json={**README_REQUEST, **change}, headers=headers)
        await assert_error(other, 409, "idempotency_conflict")
    assert await store.head() == head


async def test_requests_without_a_key_are_never_deduplicated(
    client: Client, store: EventStore
) -> None:
    """Requests without a key are never deduplicated, even with identical bodies."""
    await register(client)
    assert await create(client) != await create(client)
    assert created_count(await event_types(store)) == 2


@pytest.mark.parametrize("path", ["/v1/requests", "/hitl/request"])
async def test_concurrent_creates_with_one_key_make_one_request(
    client: Client, store: EventStore, path: str
) -> None:
    response = await client.post("/hitl/register", json={**CURL_REQUEST, "telegram_id": 1})
    assert response.status == 200

    async def attempt() -> tuple[int, str]:
        response = await client.post(
            path, json=CURL_REQUEST, headers={"Idempotency-Key": "same-key"}
        )
        return response.status, (await response.json())["request_id"]

    results = await asyncio.gather(*(attempt() for _ in range(10)))
    assert len({request_id for _, request_id in results}) == 1
    statuses = sorted(status for status, _ in results)
    if path == "/v1/requests":
        assert statuses == [200] * 9 + [201]
    else:
        assert statuses == [200] * 10
    assert created_count(await event_types(store)) == 1
