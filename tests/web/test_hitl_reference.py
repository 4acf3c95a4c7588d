"""The reference server's documented clients, unchanged, on both stores.

The Go Loopgate's README drives the HITL routes with curl and a Python polling
loop; those flows are replayed here field for field, then long-polls, racing
answers and cancellation on the same routes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from hitl_helpers import (
    CURL_REQUEST,
    CURL_SESSION,
    DEPLOY,
    HOLD,
    README_REQUEST,
    README_SESSION,
    REVIEW,
    Client,
    ServeLikeServer,
    answer,
    assert_error,
    create,
    event_types,
    poll,
    reference_fields,
    register,
    session_status,
)
from waiting import eventually

from loopgate.config import Config, RequestsConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import HUB

WAKE_BOUND = 0.2  # seconds from the answer POST returning to the long-poll returning


# --- the README's flows ---------------------------------------------------------


async def test_readme_python_polling_loop_gets_the_operators_deploy(client: Client) -> None:
    await register(client)
    response = await client.post("/hitl/request", json=README_REQUEST)
    assert response.status == 200
    result = await response.json()
    assert result["success"] is True
    assert result["status"] == "pending"
    assert result["created_at"]
    request_id = result["request_id"]

    status = await poll(client, request_id)
    assert reference_fields(status) == {
        "request_id": request_id,
        "status": "pending",
        "completed": False,
        "approved": False,
        "response": "",
    }
    assert status["metadata"] == README_REQUEST["metadata"]
    assert status["options"] == README_REQUEST["options"]

    answered = await answer(client, request_id, option=DEPLOY)
    assert answered.status == 200, await answered.text()

    # The README's loop, bounded: it stops at the first completed status.
    for _ in range(3):
        status = await poll(client, request_id)
        if status["status"] == "completed":
            break
    assert reference_fields(status) == {
        "request_id": request_id,
        "status": "completed",
        "completed": True,
        "approved": True,
        "response": DEPLOY,
    }


@pytest.mark.parametrize(
    ("options", "choice", "approved"),
    [
        ([DEPLOY, HOLD, REVIEW], HOLD, False),
        ([DEPLOY, HOLD, REVIEW], REVIEW, False),
        (["Execute", "Cancel", "Reduce Size"], "Cancel", False),
        (["Execute", "Cancel", "Reduce Size"], "Execute", True),
        (["Deploy", "Cancel", "Deploy to Staging First"], "Deploy to Staging First", True),
    ],
)
async def test_the_answer_decides_approved(
    client: Client, options: list[str], choice: str, approved: bool
) -> None:
    await register(client)
    request_id = await create(client, options=options)
    assert (await answer(client, request_id, option=choice)).status == 200
    status = await poll(client, request_id)
    assert reference_fields(status) == {
        "request_id": request_id,
        "status": "completed",
        "completed": True,
        "approved": approved,
        "response": choice,
    }


async def test_readme_curl_flow_asks_for_free_text(client: Client) -> None:
    response = await client.post("/hitl/register", json=CURL_SESSION)
    assert response.status == 200
    assert await response.json() == {
        "success": True,
        "session_id": "test",
        "message": "Session registered successfully",
    }
    request_id = await create(client, CURL_REQUEST)
    details = await (await client.get(f"/v1/requests/{request_id}")).json()
    assert details["request_type"] == "input"
    assert details["options"] == []

    assert (await answer(client, request_id, text="Looks fine, go ahead")).status == 200
    assert reference_fields(await poll(client, request_id)) == {
        "request_id": request_id,
        "status": "completed",
        "completed": True,
        "approved": True,
        "response": "Looks fine, go ahead",
    }


async def test_sessions_register_is_an_alias(client: Client) -> None:
    response = await client.post("/sessions/register", json=README_SESSION)
    assert response.status == 200
    assert (await response.json())["success"] is True
    status = await session_status(client)
    assert status["client_id"] == "ci-cd-pipeline"
    assert status["telegram_id"] == 123456789
    assert status["active"] is True


@pytest.mark.parametrize("path", ["/hitl/register", "/sessions/register"])
async def test_reregistering_is_idempotent_but_not_a_takeover(
    client: Client, store: EventStore, path: str
) -> None:
    await register(client)
    head = await store.head()
    again = await client.post(path, json=README_SESSION)
    assert again.status == 200
    assert (await again.json())["success"] is True
    assert await store.head() == head  # nothing new in the log

    for change in ({"client_id": "someone-else"}, {"telegram_id": 987654321}):
        response = await client.post(path, json={**README_SESSION, **change})
        await assert_error(response, 409, "session_exists")
    assert await store.head() == head


async def test_status_counts_open_requests(client: Client) -> None:
    await register(client)
    first = await create(client)
    await create(client)
    assert (await answer(client, first, option=DEPLOY)).status == 200
    status = await session_status(client)
    assert status["success"] is True
    assert status["session_id"] == "production-deploy-bot"
    assert status["active"] is True
    assert status["pending_requests"] == 1


async def test_deactivated_session_takes_no_new_requests(client: Client, store: EventStore) -> None:
    await register(client)
    response = await client.post("/hitl/deactivate", json={"session_id": "production-deploy-bot"})
    assert response.status == 200
    assert (await response.json())["success"] is True
    status = await session_status(client)
    assert status["active"] is False

    head = await store.head()
    refused = await client.post("/hitl/request", json=README_REQUEST)
    await assert_error(refused, 409, "session_inactive")
    again = await client.post("/hitl/deactivate", json={"session_id": "production-deploy-bot"})
    await assert_error(again, 409, "session_inactive")
    assert await store.head() == head


async def test_pending_lists_only_open_requests(client: Client) -> None:
    await register(client)
    answered, cancelled, waiting = [await create(client) for _ in range(3)]
    assert (await answer(client, answered, option=HOLD)).status == 200
    assert (await client.post("/hitl/cancel", json={"request_id": cancelled})).status == 200
    response = await client.get("/hitl/pending")
    assert response.status == 200
    pending = await response.json()
    assert pending["success"] is True
    assert pending["count"] == 1
    assert [r["id"] for r in pending["pending_requests"]] == [waiting]
    assert pending["pending_requests"][0]["status"] == "pending"


async def test_hitl_cancel_reads_canceled_in_poll(client: Client) -> None:
    await register(client)
    request_id = await create(client)
    response = await client.post("/hitl/cancel", json={"request_id": request_id})
    assert response.status == 200
    assert await response.json() == {
        "success": True,
        "request_id": request_id,
        "status": "canceled",
        "message": "Request canceled successfully",
    }
    assert reference_fields(await poll(client, request_id)) == {
        "request_id": request_id,
        "status": "canceled",
        "completed": True,
        "approved": False,
        "response": "",
    }


# --- long-poll ------------------------------------------------------------------

LONG_POLLS = {
    "hitl": "/hitl/poll?request_id={id}&wait=5",
    "v1": "/v1/requests/{id}?wait=5",
}


@pytest.mark.parametrize("route", LONG_POLLS)
async def test_long_poll_is_woken_by_the_answer(client: Client, route: str) -> None:
    await register(client)
    request_id = await create(client)
    hub = client.app[HUB]
    started = time.perf_counter()
    waiter = asyncio.create_task(client.get(LONG_POLLS[route].format(id=request_id)))
    await eventually(lambda: hub.waiting == 1)
    await asyncio.sleep(0.2)  # measured: the poll must still be waiting
    assert not waiter.done()

    answered = await answer(client, request_id, option=DEPLOY)
    answered_at = time.perf_counter()
    assert answered.status == 200
    response = await asyncio.wait_for(waiter, 5)
    woken_after = time.perf_counter() - answered_at

    assert response.status == 200
    body = await response.json()
    assert body["completed"] is True
    assert body["approved"] is True
    assert body["response"] == DEPLOY
    assert woken_after < WAKE_BOUND, f"long-poll returned {woken_after * 1000:.0f} ms late"
    assert answered_at - started >= 0.2
    assert hub.waiting == 0


@pytest.mark.parametrize("route", LONG_POLLS)
async def test_long_poll_on_a_final_request_answers_at_once(client: Client, route: str) -> None:
    await register(client)
    request_id = await create(client)
    assert (await answer(client, request_id, option=HOLD)).status == 200
    started = time.perf_counter()
    response = await client.get(LONG_POLLS[route].format(id=request_id))
    assert time.perf_counter() - started < 1
    body = await response.json()
    assert body["completed"] is True
    assert body["approved"] is False


async def test_poll_without_wait_answers_at_once(client: Client) -> None:
    await register(client)
    request_id = await create(client)
    started = time.perf_counter()
    status = await poll(client, request_id)
    assert time.perf_counter() - started < 1
    assert status["status"] == "pending"
    assert client.app[HUB].waiting == 0


async def test_wait_is_capped_at_max_wait_seconds(
    aiohttp_client: Callable[[web.Application], Awaitable[Client]], store: EventStore
) -> None:
    capped = await aiohttp_client(
        create_app(Config(requests=RequestsConfig(max_wait_seconds=1)), store=store)
    )
    await register(capped)
    request_id = await create(capped)
    started = time.perf_counter()
    status = await poll(capped, request_id, wait=1000)
    elapsed = time.perf_counter() - started
    assert status["status"] == "pending"
    assert 0.9 <= elapsed < 5


@pytest.mark.parametrize("wait", ["abc", "-1", "nan", "inf"])
async def test_a_bad_wait_is_refused(client: Client, wait: str) -> None:
    await register(client)
    request_id = await create(client)
    response = await client.get("/hitl/poll", params={"request_id": request_id, "wait": wait})
    assert "wait" in await assert_error(response, 400, "validation_failed")
    response = await client.get(f"/v1/requests/{request_id}", params={"wait": wait})
    await assert_error(response, 400, "validation_failed")


@pytest.mark.parametrize("route", LONG_POLLS)
async def test_a_client_that_hangs_up_frees_its_waiter(
    aiohttp_client: Callable[[TestServer], Awaitable[Client]],
    store: EventStore,
    config: Config,
    route: str,
) -> None:
    client = await aiohttp_client(ServeLikeServer(create_app(config, store=store)))
    await register(client)
    request_id = await create(client)
    hub = client.app[HUB]
    async with aiohttp.ClientSession() as session:
        url = client.make_url(LONG_POLLS[route].format(id=request_id).replace("wait=5", "wait=10"))
        hanging = asyncio.create_task(session.get(url))
        await eventually(lambda: hub.waiting == 1)
        hanging.cancel()
        with pytest.raises(asyncio.CancelledError):
            await hanging
    # The handler notices the closed transport within its one-second check.
    await eventually(lambda: hub.waiting == 0, within=3.0)


# --- first answer wins, cancel is final ----------------------------------------


async def test_twenty_racing_answers_have_one_winner(client: Client, store: EventStore) -> None:
    await register(client)
    request_id = await create(client, allow_text=True)
    bodies: list[dict[str, str]] = [{"option": o} for o in README_REQUEST["options"]]
    bodies += [{"text": f"answer number {i}"} for i in range(20 - len(bodies))]

    responses = await asyncio.gather(*(answer(client, request_id, **b) for b in bodies))

    winners = [r for r in responses if r.status == 200]
    assert len(winners) == 1
    for loser in responses:
        if loser.status != 200:
            await assert_error(loser, 409, "already_decided")
    types = await event_types(store, f"request-{request_id}")
    assert types.count("request.response_received") == 1
    decided = await winners[0].json()
    assert (await poll(client, request_id))["response"] == decided["response"]


@pytest.mark.parametrize("how", ["v1", "hitl"])
async def test_cancel_is_final(client: Client, store: EventStore, how: str) -> None:
    await register(client)
    request_id = await create(client)

    async def cancel() -> int:
        if how == "v1":
            return (await client.post(f"/v1/requests/{request_id}/cancel")).status
        return (await client.post("/hitl/cancel", json={"request_id": request_id})).status

    assert await cancel() == 200
    late = await answer(client, request_id, option=DEPLOY)
    await assert_error(late, 409, "already_decided")
    assert await cancel() == 200  # idempotent

    status = await poll(client, request_id)
    assert (status["status"], status["completed"], status["approved"]) == ("canceled", True, False)
    details = await (await client.get(f"/v1/requests/{request_id}")).json()
    assert details["status"] == "cancelled"
    types = await event_types(store, f"request-{request_id}")
    assert types == ["request.created", "request.cancelled"]


async def test_cancel_after_an_answer_is_refused(client: Client, store: EventStore) -> None:
    await register(client)
    request_id = await create(client)
    assert (await answer(client, request_id, option=DEPLOY)).status == 200
    head = await store.head()
    refused = await client.post(f"/v1/requests/{request_id}/cancel")
    await assert_error(refused, 409, "already_decided")
    refused = await client.post("/hitl/cancel", json={"request_id": request_id})
    await assert_error(refused, 409, "already_decided")
    assert await store.head() == head
    assert (await poll(client, request_id))["status"] == "completed"
