"""The webhook sender: a decided request's ``callback_url`` gets one signed POST.

A receiver started by each test (an aiohttp server) records what arrives and
answers with the statuses the test scripts. The HTTP tests run the whole app
on each store; the restart test runs the sender alone, stopping it between
two attempts and starting a fresh one on the same store.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from server_key import TEST_SECRETS

from loopgate.channels.webhooks.secrets import SecretBox, WebhookSecrets
from loopgate.channels.webhooks.sender import NAME, WebhookSender
from loopgate.channels.webhooks.signing import (
    DELIVERY_HEADER,
    delivery_id,
    verify_signature,
)
from loopgate.commands.base import Actor, utcnow
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.config import Config, RequestsConfig, WebhooksConfig
from loopgate.events import WebhookDelivered, WebhookFailed
from loopgate.hub import Hub
from loopgate.reactors.checkpoint import Checkpoint
from loopgate.reactors.lease import WEBHOOK_LEASE, AlwaysHeld, lease_for
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import METRICS, SECRET_BOX

Client = TestClient[Any, Any]
ServerFactory = Callable[..., Awaitable[TestServer]]
SETTLE = 5.0  # a generous bound for something that should take milliseconds
FAST = WebhooksConfig(allow_private_networks=True, retry_seconds=0.05, timeout_seconds=2)

BOX = SecretBox(lambda: bytes(range(32)))
"""The server key of the senders built by hand here."""


class Receiver:
    """A callback_url endpoint that answers with ``statuses`` in turn, then 200."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.deliveries: list[tuple[bytes, dict[str, str]]] = []
        self.arrived = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.deliveries.append((await request.read(), dict(request.headers)))
        self.arrived.set()
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)

    @property
    def ids(self) -> list[str]:
        return [headers[DELIVERY_HEADER] for _, headers in self.deliveries]


async def serve(receiver: Receiver, aiohttp_server: ServerFactory) -> str:
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/hook"))


async def webhook_events(
    store: EventStore, request_id: str
) -> list[WebhookDelivered | WebhookFailed]:
    return [
        r.event
        for r in await store.read_stream(f"request-{request_id}")
        if isinstance(r.event, WebhookDelivered | WebhookFailed)
    ]


@pytest.fixture
def config() -> Config:
    return Config(requests=RequestsConfig(max_wait_seconds=10), webhooks=FAST, secrets=TEST_SECRETS)


async def ask(client: Client, callback_url: str) -> str:
    response = await client.post("/v1/sessions", json={"session_id": "s1", "client_id": "ci"})
    assert response.status in (200, 201), await response.text()
    response = await client.post(
        "/v1/requests",
        json={
            "session_id": "s1",
            "client_id": "ci",
            "message": "Deploy v2.1?",
            "options": ["Deploy", "Hold"],
            "callback_url": callback_url,
        },
    )
    assert response.status == 201, await response.text()
    request_id: str = (await response.json())["request_id"]
    return request_id


async def answer(client: Client, request_id: str, option: str) -> None:
    response = await client.post(f"/v1/requests/{request_id}/response", json={"option": option})
    assert response.status == 200, await response.text()


async def test_a_signed_delivery_arrives_within_two_seconds_of_the_answer(
    client: Client, store: EventStore, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver()
    request_id = await ask(client, await serve(receiver, aiohttp_server))
    secret = (await (await client.get("/v1/webhook-secret")).json())["secret"]
    await answer(client, request_id, "Deploy")
    await asyncio.wait_for(receiver.arrived.wait(), 2.0)

    (body, headers), *more = receiver.deliveries
    assert more == []
    verify_signature(body, headers, secret)
    assert headers[DELIVERY_HEADER] == delivery_id(request_id)
    sent = msgspec.json.decode(body)
    assert sent["type"] == "request.answered"
    assert (sent["request_id"], sent["session_id"], sent["status"]) == (
        request_id,
        "s1",
        "answered",
    )
    assert (sent["approved"], sent["response"], sent["outcome"]) == (True, "Deploy", "approved")
    assert sent["decided_by"]["kind"] == "human"
    assert sent["decided_at"]
    recorded = await _eventually(lambda: webhook_events(store, request_id), 1)
    assert [type(e) for e in recorded] == [WebhookDelivered]
    assert (recorded[0].status_code, recorded[0].attempt) == (200, 1)


async def _eventually(
    read: Callable[[], Awaitable[list[WebhookDelivered | WebhookFailed]]], count: int
) -> list[WebhookDelivered | WebhookFailed]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while len(found := await read()) < count:
        assert loop.time() < deadline, f"expected {count} webhook events, found {found}"
        await asyncio.sleep(0.02)
    return found


async def test_a_receiver_failing_twice_gets_the_same_delivery_id_three_times(
    client: Client, store: EventStore, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver(500, 503)
    request_id = await ask(client, await serve(receiver, aiohttp_server))
    await answer(client, request_id, "Hold")
    recorded = await _eventually(lambda: webhook_events(store, request_id), 3)

    assert receiver.ids == [delivery_id(request_id)] * 3
    assert [(type(e), e.attempt) for e in recorded] == [
        (WebhookFailed, 1),
        (WebhookFailed, 2),
        (WebhookDelivered, 3),
    ]
    assert [e.error for e in recorded if isinstance(e, WebhookFailed)] == ["HTTP 500", "HTTP 503"]
    assert not any(isinstance(e, WebhookFailed) and e.final for e in recorded)
    # The decision travelled unchanged through every retry.
    assert len({body for body, _ in receiver.deliveries}) == 1


async def test_deliveries_and_failed_attempts_are_counted_for_webhooks(
    client: Client, store: EventStore, aiohttp_server: ServerFactory
) -> None:
    request_id = await ask(client, await serve(Receiver(500, 502), aiohttp_server))
    await answer(client, request_id, "Deploy")
    await _eventually(lambda: webhook_events(store, request_id), 3)
    registry = client.server.app[METRICS].registry

    def counted(name: str) -> float | None:
        return registry.get_sample_value(name, {"channel": "webhook"})

    await until(_async(lambda: counted("loopgate_deliveries_total") == 1))
    assert counted("loopgate_delivery_failures_total") == 2


async def test_a_failure_past_max_age_is_final_and_not_retried(
    store: EventStore, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver(500)
    service = Requests(
        store,
        Hub(store),
        Sessions(store, allow_private_callbacks=True),
        allow_private_callbacks=True,
    )
    settings = WebhooksConfig(allow_private_networks=True, retry_seconds=5, max_age_seconds=1)
    sender = WebhookSender(service, service.sessions, AlwaysHeld("webhooks"), settings, BOX)
    await service.hub.start()
    await sender.start()
    try:
        request_id = await _decided_request(service, await serve(receiver, aiohttp_server))
        (failed,) = await _eventually(lambda: webhook_events(store, request_id), 1)
    finally:
        await sender.stop()
        await service.hub.stop()
    assert isinstance(failed, WebhookFailed) and failed.final
    assert len(receiver.deliveries) == 1


async def _decided_request(service: Requests, url: str, session_id: str = "s1") -> str:
    actor = Actor(id="agent", role="approver")
    await service.sessions.register_session(session_id, "ci", None, actor)
    view, _ = await service.create_request(
        session_id=session_id,
        client_id="ci",
        message="Ship?",
        request_type="confirmation",
        callback_url=url,
        actor=actor,
    )
    await service.cancel(view.request_id, "changed my mind", actor)
    return view.request_id


async def test_a_restart_between_attempts_loses_nothing_and_sends_nothing_twice(
    store: EventStore, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver(500)
    service = Requests(
        store,
        Hub(store),
        Sessions(store, allow_private_callbacks=True),
        allow_private_callbacks=True,
    )
    # A long first backoff: the restart lands between attempt 1 and attempt 2.
    settings = WebhooksConfig(allow_private_networks=True, retry_seconds=0.5)
    await service.hub.start()

    def sender() -> WebhookSender:
        return WebhookSender(service, service.sessions, AlwaysHeld("webhooks"), settings, BOX)

    first = sender()
    await first.start()
    request_id = await _decided_request(service, await serve(receiver, aiohttp_server))
    await _eventually(lambda: webhook_events(store, request_id), 1)
    await first.stop()

    second = sender()
    await second.start()
    recorded = await _eventually(lambda: webhook_events(store, request_id), 2)
    await second.stop()
    assert [(type(e), e.attempt) for e in recorded] == [(WebhookFailed, 1), (WebhookDelivered, 2)]
    assert receiver.ids == [delivery_id(request_id)] * 2

    # Redo everything from the start of the log: the stream says it is delivered.
    checkpoint = Checkpoint(store, NAME)
    await checkpoint.save(0, service.clock())
    third = sender()
    await third.start()
    head = await store.head()
    await until(lambda: _caught_up(checkpoint, head))
    await third.stop()
    await service.hub.stop()
    assert len(receiver.deliveries) == 2
    assert len(await webhook_events(store, request_id)) == 2


async def _caught_up(checkpoint: Checkpoint, head: int) -> bool:
    return (await checkpoint.load() or 0) >= head


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE
    while not await condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_the_webhook_secret_is_stable_until_rotated(
    client: Client, store: EventStore
) -> None:
    first = await (await client.get("/v1/webhook-secret")).json()
    again = await (await client.get("/v1/webhook-secret")).json()
    assert first == again
    assert first["secret"].startswith("whsec_")
    rotated = await (await client.post("/v1/webhook-secret")).json()
    assert rotated["secret"] != first["secret"]
    assert (await (await client.get("/v1/webhook-secret")).json()) == rotated
    box = client.server.app[SECRET_BOX]
    assert await WebhookSecrets(store, utcnow, box).current("local") == (rotated["secret"])


async def test_a_private_callback_url_is_refused_without_the_setting(
    store: EventStore, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(create_app(Config(), store=store))
    response = await client.post("/v1/sessions", json={"session_id": "s1", "client_id": "ci"})
    assert response.status in (200, 201)
    for url in (
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://[::ffff:10.0.0.1]/",
    ):
        response = await client.post(
            "/v1/requests",
            json={"session_id": "s1", "client_id": "ci", "message": "Go?", "callback_url": url},
        )
        assert response.status == 422, url
        assert (await response.json())["error"]["code"] == "callback_url_not_allowed"
    listed = await (await client.get("/v1/requests")).json()
    assert listed["requests"] == []


# Postgres only: one process per SQLite file holds its lease always, so nothing is shared.
@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
async def test_two_processes_send_each_delivery_once_and_hand_over_on_stop(
    open_test_store: Callable[[], Awaitable[EventStore]],
    aiohttp_server: ServerFactory,
) -> None:
    receiver = Receiver()
    url = await serve(receiver, aiohttp_server)
    processes = []
    for _ in range(2):  # two stores on one database: as two server processes see it
        store = await open_test_store()
        service = Requests(
            store,
            Hub(store),
            Sessions(store, allow_private_callbacks=True),
            allow_private_callbacks=True,
        )
        await service.hub.start()
        sender = WebhookSender(
            service, service.sessions, lease_for(store, "webhooks", WEBHOOK_LEASE), FAST, BOX
        )
        await sender.start()
        processes.append((service, sender))
    (service, holder), (other_service, standby) = sorted(processes, key=lambda p: not p[1].held)
    assert (holder.held, standby.held) == (True, False)
    try:
        first = await _decided_request(service, url)
        await _eventually(lambda: webhook_events(service.store, first), 1)
        await holder.stop()
        await until(_async(lambda: standby.held))
        second = await _decided_request(other_service, url, "s2")
        await _eventually(lambda: webhook_events(service.store, second), 1)
    finally:
        for each_service, sender in processes:
            await sender.stop()
            await each_service.hub.stop()
    assert sorted(receiver.ids) == sorted([delivery_id(first), delivery_id(second)])


def _async(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


async def test_a_sessions_default_callback_url_serves_requests_that_name_none(
    client: Client, store: EventStore, aiohttp_server: ServerFactory
) -> None:
    receiver = Receiver()
    url = await serve(receiver, aiohttp_server)
    response = await client.post(
        "/v1/sessions", json={"session_id": "hooked", "client_id": "ci", "callback_url": url}
    )
    assert response.status == 201, await response.text()
    assert (await response.json())["callback_url"] == url
    response = await client.post(
        "/v1/requests", json={"session_id": "hooked", "client_id": "ci", "message": "Go?"}
    )
    request_id = (await response.json())["request_id"]
    response = await client.post(f"/v1/requests/{request_id}/cancel", json={})
    assert response.status == 200, await response.text()
    await asyncio.wait_for(receiver.arrived.wait(), 2.0)
    assert receiver.ids == [delivery_id(request_id)]
    assert msgspec.json.decode(receiver.deliveries[0][0])["status"] == "cancelled"


async def test_a_private_session_callback_url_is_refused_without_the_setting(
    store: EventStore, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    client = await aiohttp_client(create_app(Config(), store=store))
    response = await client.post(
        "/v1/sessions",
        json={"session_id": "s1", "client_id": "ci", "callback_url": "http://10.0.0.8/hook"},
    )
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "callback_url_not_allowed"


async def test_a_host_that_rebinds_to_loopback_after_the_check_is_never_connected_to(
    store: EventStore, aiohttp_server: ServerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    port = urlsplit(await serve(receiver, aiohttp_server)).port
    loop = asyncio.get_running_loop()
    real_getaddrinfo = loop.getaddrinfo
    lookups: list[str] = []

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "rebind.test":
            return await real_getaddrinfo(host, port, *args, **kwargs)
        # The first answer (the sender's check) is public; every later one is loopback.
        address = "93.184.216.34" if not lookups else "127.0.0.1"
        lookups.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    service = Requests(
        store,
        Hub(store),
        Sessions(store, allow_private_callbacks=True),
        allow_private_callbacks=True,  # skip the creation check: the sender's is the one tested
    )
    settings = WebhooksConfig(allow_private_networks=False, retry_seconds=5, timeout_seconds=2)
    sender = WebhookSender(service, service.sessions, AlwaysHeld("webhooks"), settings, BOX)
    await service.hub.start()
    await sender.start()
    try:
        request_id = await _decided_request(service, f"http://rebind.test:{port}/hook")
        (failed,) = await _eventually(lambda: webhook_events(store, request_id), 1)
    finally:
        await sender.stop()
        await service.hub.stop()
    assert lookups[:2] == ["93.184.216.34", "127.0.0.1"]  # checked, then resolved to connect
    assert receiver.deliveries == []
    assert isinstance(failed, WebhookFailed) and failed.final
    assert "now resolves to 127.0.0.1" in failed.error
