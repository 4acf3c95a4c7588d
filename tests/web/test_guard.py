"""No web page can drive the API: the guard's Content-Type, Host and Origin rules.

Each refusal is checked on the whole app, on both stores, with the log's head
unchanged: a refused request never reaches a handler.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pytest
from account_helpers import AppClientFactory
from aiohttp import web
from aiohttp.test_utils import TestClient
from console_helpers import operator
from hitl_helpers import CURL_REQUEST, README_REQUEST, assert_error, create, poll, register

from loopgate.config import AuthConfig, Config, ConfigError, ServerConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.guard import LISTENING, allowed_for

Client = TestClient[Any, Any]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
EVIL = "http://evil.example"


def _json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def _own_host(client: Client) -> str:
    return f"127.0.0.1:{client.server.port}"


# --- Content-Type ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded"],
)
async def test_a_json_body_sent_as_text_or_a_form_is_refused_with_415_and_nothing_is_recorded(
    client: Client, store: EventStore, content_type: str
) -> None:
    await register(client)
    head = await store.head()
    response = await client.post(
        "/hitl/request", data=_json(README_REQUEST), headers={"Content-Type": content_type}
    )
    message = await assert_error(response, 415, "unsupported_media_type")
    assert "application/json" in message
    assert await store.head() == head


async def test_an_answer_sent_as_text_plain_is_refused_and_the_request_stays_pending(
    client: Client, store: EventStore
) -> None:
    await register(client)
    request_id = await create(client)
    head = await store.head()
    response = await client.post(
        f"/v1/requests/{request_id}/response",
        data=b'{"option": "\\ud83d\\ude80 Deploy"}',
        headers={"Content-Type": "text/plain"},
    )
    await assert_error(response, 415, "unsupported_media_type")
    assert await store.head() == head
    assert (await poll(client, request_id))["status"] == "pending"


async def test_a_body_without_a_json_type_is_refused(client: Client) -> None:
    # aiohttp labels raw bytes application/octet-stream, as curl --data-binary would not.
    response = await client.post("/hitl/request", data=_json(CURL_REQUEST))
    await assert_error(response, 415, "unsupported_media_type")


async def test_json_with_a_charset_parameter_is_accepted_and_text_with_one_is_not(
    client: Client,
) -> None:
    await register(client)
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = await client.post("/hitl/request", data=_json(README_REQUEST), headers=headers)
    assert response.status == 200, await response.text()
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    response = await client.post("/hitl/request", data=_json(README_REQUEST), headers=headers)
    await assert_error(response, 415, "unsupported_media_type")


async def test_requests_without_a_body_need_no_content_type(client: Client) -> None:
    await register(client)
    request_id = await create(client)
    assert (await client.get("/hitl/pending")).status == 200
    cancel = f"/v1/requests/{request_id}/cancel"
    with_text = await client.post(cancel, data=b"{}", headers={"Content-Type": "text/plain"})
    await assert_error(with_text, 415, "unsupported_media_type")
    cancelled = await client.post(cancel)
    assert cancelled.status == 200, await cancelled.text()


# --- Host -----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example:8080", "evil.example", "localhost:1"])
async def test_an_unknown_host_is_refused_with_421_and_nothing_is_recorded(
    client: Client, store: EventStore, host: str
) -> None:
    await register(client)
    head = await store.head()
    created = await client.post("/hitl/request", json=README_REQUEST, headers={"Host": host})
    message = await assert_error(created, 421, "host_not_allowed")
    assert "server.allowed_hosts" in message
    assert await store.head() == head
    # After a DNS rebind a page would read the queue: refused the same way.
    read = await client.get("/hitl/pending", headers={"Host": host})
    await assert_error(read, 421, "host_not_allowed")


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "LocalHost", "[::1]"])
async def test_the_loopback_names_on_the_listening_port_are_accepted(
    client: Client, name: str
) -> None:
    response = await client.get("/hitl/pending", headers={"Host": f"{name}:{client.server.port}"})
    assert response.status == 200, await response.text()
    elsewhere = await client.get(
        "/hitl/pending", headers={"Host": f"{name}:{client.server.port + 1}"}
    )
    await assert_error(elsewhere, 421, "host_not_allowed")


async def test_health_checks_answer_any_host(client: Client) -> None:
    for path in ("/health", "/healthz", "/readyz"):
        response = await client.get(path, headers={"Host": "10.1.2.3:8080"})
        assert response.status == 200, path
    response = await client.get("/hitl/pending", headers={"Host": "10.1.2.3:8080"})
    await assert_error(response, 421, "host_not_allowed")


async def test_a_listed_host_is_accepted_and_the_default_names_no_longer_are(
    aiohttp_client: ClientFactory, store: EventStore, config: Config
) -> None:
    server = ServerConfig(allowed_hosts="loopgate.example.com, proxy.internal:8443")
    app = create_app(msgspec.structs.replace(config, server=server), store=store)
    client = await aiohttp_client(app)
    for host in ("loopgate.example.com", "loopgate.example.com:443", "proxy.internal:8443"):
        response = await client.get("/hitl/pending", headers={"Host": host})
        assert response.status == 200, host
    for host in ("proxy.internal:8080", _own_host(client)):
        response = await client.get("/hitl/pending", headers={"Host": host})
        await assert_error(response, 421, "host_not_allowed")


# --- Origin ---------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [EVIL, "http://evil.example:8080", "null"])
async def test_a_foreign_origin_is_refused_with_403_and_nothing_is_recorded(
    client: Client, store: EventStore, origin: str
) -> None:
    await register(client)
    head = await store.head()
    response = await client.post("/hitl/request", json=README_REQUEST, headers={"Origin": origin})
    message = await assert_error(response, 403, "origin_not_allowed")
    assert "server.allowed_origins" in message
    assert await store.head() == head


async def test_a_page_of_the_servers_own_origin_is_accepted(client: Client) -> None:
    await register(client)
    own = {"Origin": f"http://{_own_host(client)}"}
    response = await client.post("/hitl/request", json=README_REQUEST, headers=own)
    assert response.status == 200, await response.text()
    # Another port of the same machine is another site (another local dev server's page).
    other = {"Origin": f"http://127.0.0.1:{client.server.port + 1}"}
    response = await client.post("/hitl/request", json=README_REQUEST, headers=other)
    await assert_error(response, 403, "origin_not_allowed")


async def test_a_request_without_an_origin_is_accepted(client: Client, store: EventStore) -> None:
    await register(client)
    assert "Origin" not in client.session.headers
    request_id = await create(client)
    # The same caller's answer from a page is not.
    answer = f"/v1/requests/{request_id}/response"
    from_page = await client.post(
        answer, json={"option": README_REQUEST["options"][0]}, headers={"Origin": EVIL}
    )
    await assert_error(from_page, 403, "origin_not_allowed")


async def test_a_listed_origin_is_accepted(
    aiohttp_client: ClientFactory, store: EventStore, config: Config
) -> None:
    server = ServerConfig(allowed_origins="https://app.example.com")
    app = create_app(msgspec.structs.replace(config, server=server), store=store)
    client = await aiohttp_client(app)
    await register(client)
    listed = {"Origin": "https://app.example.com"}
    response = await client.post("/hitl/request", json=README_REQUEST, headers=listed)
    assert response.status == 200, await response.text()
    response = await client.post("/hitl/request", json=README_REQUEST, headers={"Origin": EVIL})
    await assert_error(response, 403, "origin_not_allowed")


# --- what the guard leaves alone ------------------------------------------------------


async def test_console_forms_keep_their_own_checks(open_client: Client) -> None:
    # A form body and a foreign Host: the console's cookie and CSRF token decide, not the guard.
    await operator(open_client)
    page = await open_client.get("/console", headers={"Host": "evil.example"})
    assert page.status == 200, await page.text()
    refused = await open_client.post(
        "/console/logout", data={"csrf_token": "x"}, headers={"Origin": EVIL}
    )
    assert refused.status == 403
    assert "another site" in await refused.text()
    # The JSON API under the same Host is the guard's.
    api = await open_client.get("/hitl/pending", headers={"Host": "evil.example"})
    await assert_error(api, 421, "host_not_allowed")


# --- the defaults ---------------------------------------------------------------------


def test_a_loopback_bind_allows_the_loopback_names_and_its_own_address_on_its_port() -> None:
    allowed = allowed_for(Config(server=ServerConfig(host="127.0.0.2")))
    assert allowed.hosts == {
        (name, LISTENING) for name in ("127.0.0.1", "127.0.0.2", "localhost", "[::1]")
    }
    assert allowed.origins == frozenset()


def test_a_public_bind_with_api_keys_required_allows_any_host() -> None:
    assert allowed_for(Config(server=ServerConfig(host="0.0.0.0"))).hosts is None


def test_a_public_bind_without_api_keys_allows_only_the_loopback_names() -> None:
    config = Config(server=ServerConfig(host="0.0.0.0"), auth=AuthConfig(require_api_key="false"))
    hosts = allowed_for(config).hosts
    assert hosts is not None
    assert {name for name, _ in hosts} == {"127.0.0.1", "localhost", "[::1]"}


def test_a_star_allows_any_host_or_origin_and_a_bad_entry_is_a_config_error() -> None:
    allowed = allowed_for(Config(server=ServerConfig(allowed_hosts="*", allowed_origins="*")))
    assert allowed.hosts is None and allowed.origins is None
    with pytest.raises(ConfigError, match=r"server\.allowed_hosts"):
        allowed_for(Config(server=ServerConfig(allowed_hosts="example.com:http")))


async def test_the_host_is_checked_before_the_api_key(app_client: AppClientFactory) -> None:
    # A loopback bind keeps its list even with keys required, and says nothing about keys.
    client = await app_client(require_api_key="true")
    response = await client.get("/hitl/pending", headers={"Host": "evil.example"})
    await assert_error(response, 421, "host_not_allowed")
