"""SSE streams of the log: order, resume, heartbeat, tenancy, no secrets, fan-out, release."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import msgspec
import pytest
from account_helpers import AppClientFactory, Client, api_key, new_key, sign_up
from aiohttp import ClientResponse
from hitl_helpers import assert_error
from waiting import eventually

from loopgate import hub as hub_module
from loopgate.config import Config, RequestsConfig, StreamConfig
from loopgate.web.keys import HUB

SETTLE = 10.0
SESSION = {"session_id": "stream-bot", "client_id": "agent-1"}


@pytest.fixture
def config() -> Config:
    """Heartbeats every second, so pings and disconnects show up quickly."""
    return Config(requests=RequestsConfig(max_wait_seconds=10), stream=StreamConfig(1))


class SSE:
    """A minimal SSE reader over ``response.content``: messages and comments, in order."""

    def __init__(self, response: ClientResponse) -> None:
        assert response.status == 200, response.status
        assert response.headers["Content-Type"].startswith("text/event-stream")
        self.response = response
        self.comments: list[str] = []

    async def message(self, within: float = SETTLE) -> dict[str, str]:
        """The next message or comment: ``{"id", "event", "data"}`` or ``{"comment"}``."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(within):
            while True:
                raw = await self.response.content.readline()
                assert raw, "the stream ended"
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if fields:
                        return fields
                    continue
                if line.startswith(":"):
                    return {"comment": line[1:].strip()}
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    async def event(self, within: float = SETTLE) -> dict[str, Any]:
        """The next event, skipping heartbeats; its data decoded, with ``id`` and ``event``."""
        while True:
            message = await self.message(within)
            if "comment" in message:
                self.comments.append(message["comment"])
                continue
            data: dict[str, Any] = json.loads(message["data"])
            assert message["id"] == str(data["position"])
            assert message["event"] == data["type"]
            return data

    async def events(self, n: int) -> list[dict[str, Any]]:
        return [await self.event() for _ in range(n)]

    async def quiet(self, seconds: float = 0.3) -> None:
        """Assert no event arrives for a while (heartbeats are fine)."""
        try:
            event = await self.event(within=seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {event}")


async def open_sse(client: Client, path: str, **kwargs: Any) -> SSE:
    return SSE(await client.get(path, **kwargs))


async def new_session(
    client: Client, headers: dict[str, str] | None = None, session_id: str = "stream-bot"
) -> None:
    body = {**SESSION, "session_id": session_id}
    response = await client.post("/v1/sessions", json=body, headers=headers)
    assert response.status in (200, 201), await response.text()


async def ask(client: Client, headers: dict[str, str] | None = None, **fields: Any) -> str:
    body = {**SESSION, "message": "Deploy?", "options": ["Deploy", "Hold"], **fields}
    response = await client.post("/v1/requests", json=body, headers=headers)
    assert response.status == 201, await response.text()
    request_id: str = (await response.json())["request_id"]
    return request_id


async def answer(client: Client, request_id: str, option: str = "Deploy") -> None:
    response = await client.post(f"/v1/requests/{request_id}/response", json={"option": option})
    assert response.status == 200, await response.text()


# --- one request, one session ----------------------------------------------------------


async def test_a_requests_events_arrive_in_order(client: Client) -> None:
    await new_session(client)
    request_id = await ask(client)
    stream = await open_sse(client, f"/v1/requests/{request_id}/events")
    assert stream.response.headers["X-Request-ID"]

    created = await stream.event()
    assert created["type"] == "request.created"
    assert created["stream"] == f"request-{request_id}"
    assert created["data"]["request_id"] == request_id
    assert created["data"]["message"] == "Deploy?"
    assert created["data"]["options"][0]["label"] == "Deploy"
    assert created["actor"] == "anonymous"
    assert created["recorded_at"]

    await answer(client, request_id)
    answered = await stream.event()
    assert answered["type"] == "request.response_received"
    assert answered["position"] > created["position"]
    assert answered["data"]["option"] == "Deploy"
    assert answered["data"]["approved"] is True


async def test_a_request_stream_shows_no_other_requests(client: Client) -> None:
    await new_session(client)
    mine, other = await ask(client), await ask(client, message="Other?")
    stream = await open_sse(client, f"/v1/requests/{mine}/events")
    assert (await stream.event())["data"]["request_id"] == mine
    await answer(client, other)
    await answer(client, mine)
    assert (await stream.event())["data"]["request_id"] == mine
    await stream.quiet()


async def test_a_session_stream_sees_its_requests(client: Client) -> None:
    await new_session(client)
    earlier = await ask(client)
    stream = await open_sse(client, f"/v1/sessions/{SESSION['session_id']}/events")
    first = await stream.events(2)
    assert [e["type"] for e in first] == ["session.registered", "request.created"]
    assert first[1]["data"]["request_id"] == earlier

    later = await ask(client)  # created while the stream is live
    await answer(client, later)
    await answer(client, earlier)
    rest = await stream.events(3)
    assert [(e["type"], e["data"]["request_id"]) for e in rest] == [
        ("request.created", later),
        ("request.response_received", later),
        ("request.response_received", earlier),
    ]
    positions = [e["position"] for e in first + rest]
    assert positions == sorted(positions)


async def test_unknown_request_or_session_is_404_before_streaming(client: Client) -> None:
    await assert_error(await client.get("/v1/requests/nope/events"), 404, "request_not_found")
    await assert_error(await client.get("/v1/sessions/nope/events"), 404, "session_not_found")


# --- the tenant's stream ----------------------------------------------------------------


async def test_the_tenant_stream_filters_by_type(client: Client) -> None:
    await new_session(client)
    stream = await open_sse(client, "/v1/events?types=request.created,request.response_received")
    request_id = await ask(client)
    await client.post(f"/v1/requests/{request_id}/cancel")
    other = await ask(client)
    await answer(client, other)
    events = await stream.events(3)
    assert [(e["type"], e["data"]["request_id"]) for e in events] == [
        ("request.created", request_id),
        ("request.created", other),
        ("request.response_received", other),
    ]
    await stream.quiet()


async def test_an_unknown_type_is_400(client: Client) -> None:
    await assert_error(
        await client.get("/v1/events?types=user.registered"), 400, "validation_failed"
    )
    await assert_error(await client.get("/v1/events?after=-1"), 400, "validation_failed")


async def test_last_event_id_replays_what_came_after_then_goes_live(client: Client) -> None:
    await new_session(client)
    request_id = await ask(client)
    await answer(client, request_id)
    first = await open_sse(client, f"/v1/requests/{request_id}/events")
    created, answered = await first.events(2)
    first.response.close()

    resumed = await open_sse(
        client,
        f"/v1/requests/{request_id}/events",
        headers={"Last-Event-ID": str(created["position"])},
    )
    assert (await resumed.event())["position"] == answered["position"]
    await resumed.quiet()

    everything = await open_sse(client, "/v1/events", headers={"Last-Event-ID": "0"})
    replayed = await everything.events(3)
    assert [e["type"] for e in replayed] == [
        "session.registered",
        "request.created",
        "request.response_received",
    ]
    live = await ask(client)
    event = await everything.event()
    assert (event["type"], event["data"]["request_id"]) == ("request.created", live)
    assert event["position"] > answered["position"]
    await everything.quiet()


async def test_after_resumes_like_last_event_id(client: Client) -> None:
    await new_session(client)
    ids = [await ask(client) for _ in range(3)]
    stream = await open_sse(client, "/v1/events?types=request.created&after=0")
    first = await stream.event()
    assert first["data"]["request_id"] == ids[0]
    stream.response.close()

    resumed = await open_sse(client, f"/v1/events?types=request.created&after={first['position']}")
    assert [e["data"]["request_id"] for e in await resumed.events(2)] == ids[1:]
    await resumed.quiet()


async def test_a_heartbeat_comment_arrives_every_heartbeat(client: Client) -> None:
    stream = await open_sse(client, "/v1/events")
    assert await stream.message(within=3) == {"comment": "ping"}


# --- tenancy and secrets ------------------------------------------------------------------


async def test_streams_are_scoped_to_the_callers_tenant(app_client: AppClientFactory) -> None:
    client = await app_client(require_api_key="true")
    alice, bob = await sign_up(client, "alice"), await sign_up(client, "bob")
    as_alice = api_key((await new_key(client, alice))["raw_key"])
    as_bob = api_key((await new_key(client, bob))["raw_key"])

    bobs_stream = await open_sse(client, "/v1/events", headers=as_bob)
    await new_session(client, as_alice)
    alices_request = await ask(client, as_alice)

    response = await client.get(f"/v1/requests/{alices_request}/events", headers=as_bob)
    await assert_error(response, 404, "request_not_found")
    response = await client.get(f"/v1/sessions/{SESSION['session_id']}/events", headers=as_bob)
    await assert_error(response, 404, "session_not_found")
    await assert_error(await client.get("/v1/events"), 401, "unauthorized")

    await new_session(client, as_bob, session_id="bobs-bot")
    bobs_request = await ask(client, as_bob, session_id="bobs-bot")
    events = await bobs_stream.events(2)
    assert [e["type"] for e in events] == ["session.registered", "request.created"]
    assert events[1]["data"]["request_id"] == bobs_request
    await bobs_stream.quiet()

    # Replaying the whole log shows Bob only his own events too.
    replay = await open_sse(client, "/v1/events?after=0", headers=as_bob)
    assert [e["data"].get("request_id") for e in await replay.events(2)] == [None, bobs_request]
    await replay.quiet()


async def test_account_events_never_appear(app_client: AppClientFactory) -> None:
    client = await app_client(require_api_key="true")
    carol = await sign_up(client, "carol")
    key = await new_key(client, carol)
    as_carol = api_key(key["raw_key"])
    stream = await open_sse(client, "/v1/events", headers=as_carol)
    replay = await open_sse(client, "/v1/events?after=0", headers=as_carol)

    await new_key(client, carol, name="another")  # an apikey.created while both are open
    await client.post("/api/auth/login", json={"username": carol.username, "password": "wrong"})
    await new_session(client, as_carol)
    for sse in (stream, replay):
        event = await sse.event()
        assert event["type"] == "session.registered"
        raw = msgspec.json.encode(event).decode()
        assert key["raw_key"] not in raw and "hash" not in raw
        await sse.quiet()


# --- many clients, slow clients, gone clients -----------------------------------------------


async def test_many_clients_each_get_every_event_once_in_order(client: Client) -> None:
    await new_session(client)
    url = client.make_url("/v1/events?types=request.created")
    clients, events = 200, 20
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        responses = await asyncio.gather(*(session.get(url) for _ in range(clients)))
        streams = [SSE(response) for response in responses]
        hub = client.server.app[HUB]
        assert hub.subscribers >= clients
        ids = [await ask(client) for _ in range(events)]
        received = await asyncio.gather(*(stream.events(events) for stream in streams))
        for got in received:
            assert [e["data"]["request_id"] for e in got] == ids
        await asyncio.gather(*(stream.quiet(0.2) for stream in streams))
        for response in responses:
            response.close()


async def test_a_reader_that_falls_behind_still_gets_everything(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "SUBSCRIPTION_QUEUE_SIZE", 5)
    await new_session(client)
    stream = await open_sse(client, "/v1/events?types=request.created")
    hub = client.server.app[HUB]
    [subscription] = hub._subscriptions
    # Hold the handler: it cannot take from its queue while the log grows by 50.
    next_event = subscription.next
    gate = asyncio.Event()

    async def held(wait_seconds: float | None = None) -> Any:
        await gate.wait()
        return await next_event(wait_seconds)

    monkeypatch.setattr(subscription, "next", held)
    ids = [await ask(client) for _ in range(50)]
    await eventually(lambda: subscription.catching_up)
    gate.set()
    assert [e["data"]["request_id"] for e in await stream.events(50)] == ids
    await stream.quiet()


async def test_a_client_that_goes_away_is_released(client: Client) -> None:
    hub = client.server.app[HUB]
    stream = await open_sse(client, "/v1/events")
    assert hub.subscribers == 1
    stream.response.close()
    await eventually(lambda: hub.subscribers == 0, within=2.5)  # two heartbeats and a bit
