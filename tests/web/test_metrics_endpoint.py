"""/metrics: what it counts, what it reads live, and where and to whom it is served."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from account_helpers import TEST_JWT_SECRET
from aiohttp import web
from aiohttp.test_utils import TestClient, make_mocked_request
from hitl_helpers import DEPLOY, answer, create, register
from prometheus_client.parser import text_string_to_metric_families
from waiting import eventually

from loopgate.config import AuthConfig, Config, MetricsConfig, ServerConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import CONFIG, HUB, METRICS
from loopgate.web.metrics import method_label, metrics_app

Client = TestClient[Any, Any]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
TOKEN = "scrape-token-0123456789"


async def scrape(client: Client, **headers: str) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of ``/metrics``, keyed by name and labels."""
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[tuple[str, frozenset[Any]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: dict[tuple[str, frozenset[Any]], float], name: str) -> list[dict[str, str]]:
    return [dict(labels) for sample, labels in samples if sample == name]


# --- what is counted ----------------------------------------------------------------------


async def test_a_created_and_an_answered_request_show_in_counters_and_histogram(
    client: Client,
) -> None:
    await register(client)
    request_id = await create(client)
    response = await answer(client, request_id, option=DEPLOY)
    assert response.status == 200, await response.text()

    samples = await scrape(client)

    assert value(samples, "loopgate_requests_created_total") == 1
    assert names(samples, "loopgate_requests_decided_total") == [
        {"outcome": "approved", "channel": "api"}
    ]
    assert value(samples, "loopgate_requests_decided_total", outcome="approved", channel="api") == 1
    assert value(samples, "loopgate_decision_seconds_count", outcome="approved") == 1
    assert value(samples, "loopgate_decision_seconds_bucket", outcome="approved", le="+Inf") == 1


async def test_a_repeated_answer_is_not_counted_again(client: Client) -> None:
    await register(client)
    request_id = await create(client)
    for _ in range(2):
        assert (await answer(client, request_id, option=DEPLOY)).status == 200

    samples = await scrape(client)

    assert value(samples, "loopgate_requests_decided_total", outcome="approved", channel="api") == 1


async def test_cancel_is_counted_under_its_own_outcome(client: Client) -> None:
    await register(client)
    request_id = await create(client)
    response = await client.post("/hitl/cancel", json={"request_id": request_id})
    assert response.status == 200, await response.text()

    samples = await scrape(client)

    assert names(samples, "loopgate_requests_decided_total") == [
        {"outcome": "cancelled", "channel": "api"}
    ]


async def test_an_expiry_is_counted_as_the_systems_decision_after_the_timeout(
    client: Client,
) -> None:
    await register(client)
    await create(client, timeout_seconds=1)
    registry = client.server.app[METRICS].registry
    expired = {"outcome": "expired", "channel": "system"}

    await eventually(
        lambda: registry.get_sample_value("loopgate_requests_decided_total", expired) == 1
    )
    seconds = registry.get_sample_value("loopgate_decision_seconds_sum", {"outcome": "expired"})
    assert seconds is not None and seconds >= 1


async def test_appends_are_measured_on_the_stores_backend(
    client: Client, store: EventStore
) -> None:
    await register(client)
    await create(client)

    samples = await scrape(client)

    # The session and the request: two appends, each of one event.
    assert value(samples, "loopgate_store_append_seconds_count", backend=store.backend) >= 2
    assert value(samples, "loopgate_store_batch_events_sum", backend=store.backend) >= 2
    assert value(samples, "loopgate_store_batch_events_count", backend=store.backend) >= 1


async def test_http_responses_are_counted_by_route_template_never_the_raw_path(
    client: Client,
) -> None:
    await register(client)
    request_id = await create(client)
    assert (await client.get(f"/v1/requests/{request_id}")).status == 200
    assert (await client.get("/v1/requests/no-such-request")).status == 404
    assert (await client.get(f"/no/such/route/{request_id}")).status == 404

    samples = await scrape(client)

    route = "/v1/requests/{request_id}"
    assert value(samples, "loopgate_http_requests_total", route=route, method="GET", status="200")
    assert value(samples, "loopgate_http_requests_total", route=route, method="GET", status="404")
    assert value(
        samples, "loopgate_http_requests_total", route="unmatched", method="GET", status="404"
    )
    assert value(
        samples, "loopgate_http_requests_total", route="/hitl/request", method="POST", status="200"
    )
    # No label anywhere holds an id.
    assert not [labels for _, labels in samples if any(request_id in v for _, v in labels)]


def test_an_unknown_method_is_one_label_value() -> None:
    # aiohttp's C parser refuses unknown methods before the app; its Python one does not.
    assert method_label(make_mocked_request("BREW", "/hitl/pending")) == "other"
    assert method_label(make_mocked_request("PATCH", "/hitl/pending")) == "PATCH"


# --- what is read at scrape time ----------------------------------------------------------


async def test_a_parked_long_poll_shows_as_a_waiter_until_it_returns(client: Client) -> None:
    await register(client)
    request_id = await create(client)
    hub = client.server.app[HUB]
    before = value(await scrape(client), "loopgate_hub_waiters")
    long_poll = asyncio.create_task(client.get(f"/v1/requests/{request_id}?wait=10"))
    await eventually(lambda: hub.waiting > before)

    assert value(await scrape(client), "loopgate_hub_waiters") == before + 1

    assert (await answer(client, request_id, option=DEPLOY)).status == 200
    assert (await long_poll).status == 200
    assert value(await scrape(client), "loopgate_hub_waiters") == before


async def test_an_open_sse_stream_is_counted_until_it_closes(client: Client) -> None:
    hub = client.server.app[HUB]
    assert value(await scrape(client), "loopgate_sse_streams") == 0
    stream = await client.get("/v1/events")
    assert stream.status == 200

    assert value(await scrape(client), "loopgate_sse_streams") == 1

    stream.close()
    await eventually(lambda: hub.subscribers == 0)
    assert value(await scrape(client), "loopgate_sse_streams") == 0


async def test_the_webhook_senders_lag_is_shown_while_it_holds_its_lease(client: Client) -> None:
    samples = await scrape(client)

    assert names(samples, "loopgate_reactor_lag_events") == [{"reactor": "webhook-sender"}]


# --- where and to whom ----------------------------------------------------------------------


def public(config: Config, **metrics: Any) -> Config:
    """``config`` bound to every interface, as in production, with ``metrics`` settings."""
    return msgspec.structs.replace(
        config,
        server=ServerConfig(host="0.0.0.0"),
        auth=AuthConfig(jwt_secret=TEST_JWT_SECRET),
        metrics=MetricsConfig(**metrics),
    )


@pytest.fixture
def app_for(
    aiohttp_client: ClientFactory, store: EventStore, config: Config
) -> Callable[..., Awaitable[Client]]:
    async def factory(**metrics: Any) -> Client:
        return await aiohttp_client(create_app(public(config, **metrics), store=store))

    return factory


async def test_bound_beyond_loopback_without_token_or_bind_metrics_are_404(
    app_for: Callable[..., Awaitable[Client]],
) -> None:
    client = await app_for()

    response = await client.get("/metrics")

    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_a_token_is_required_when_set(app_for: Callable[..., Awaitable[Client]]) -> None:
    client = await app_for(token=TOKEN)

    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
    samples = await scrape(client, Authorization=f"Bearer {TOKEN}")

    for refused in (missing, wrong):
        assert refused.status == 401
        assert (await refused.json())["error"]["code"] == "unauthorized"
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert names(samples, "loopgate_http_requests_total")


async def test_disabled_metrics_are_404_even_on_loopback(
    aiohttp_client: ClientFactory, store: EventStore, config: Config
) -> None:
    off = msgspec.structs.replace(config, metrics=MetricsConfig(enabled=False))
    client = await aiohttp_client(create_app(off, store=store))

    assert (await client.get("/metrics")).status == 404


async def test_with_a_bind_only_the_metrics_listener_serves_them(
    aiohttp_client: ClientFactory, app_for: Callable[..., Awaitable[Client]]
) -> None:
    main = await app_for(bind="127.0.0.1:9464", token=TOKEN)
    app = main.server.app
    listener = await aiohttp_client(metrics_app(app[CONFIG], app[METRICS]))
    assert (await main.get("/health")).status == 200

    assert (await main.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})).status == 404
    assert (await listener.get("/metrics")).status == 401
    assert (await listener.get("/hitl/pending")).status == 404
    samples = await scrape(listener, Authorization=f"Bearer {TOKEN}")
    assert value(
        samples, "loopgate_http_requests_total", route="/health", method="GET", status="200"
    )
