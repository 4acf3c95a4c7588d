"""Every route, fed generated bodies and query strings, answers below 500, on both stores.

The bodies are JSON of any shape: text with NUL and any Unicode, nesting up to
600 levels, wrong types, integers far beyond 64 bits, a valid body with one
field replaced, and bytes that are not JSON at all. Each is sent without
credentials (the open loopback mode's anonymous caller), with a login token and
with an API key. A 4xx from the JSON API must be the one error shape.

Hypothesis drives a synchronous test: the app runs on an event loop of the
test's own, so that one app and one store serve all examples of a backend.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import msgspec
import pytest
from account_helpers import TEST_JWT_SECRET, sign_up
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loopgate.config import AuthConfig, Config
from loopgate.store import open_store
from loopgate.web.app import create_app

EXAMPLES_PER_ROUTE = 40
SESSION = {"session_id": "deploys", "client_id": "ci"}
ASK = {**SESSION, "message": "Deploy?", "options": ["Yes", "No"]}
FIELDS = [
    *("session_id", "client_id", "telegram_id", "message", "options", "metadata"),
    *("request_type", "allow_text", "timeout_seconds", "on_timeout", "callback_url"),
    *("idempotency_key", "request_id", "reason", "option", "text", "username", "password"),
    *("label", "expires_at", "status", "jsonrpc", "method", "params", "id"),
]
QUERY = [
    *("request_id", "session_id", "status", "limit", "cursor", "after", "types", "format"),
    *("from", "to", "tz", "next"),
]
PARAM = re.compile(r"\{(\w+)\}")

# Any Unicode but lone surrogates (not UTF-8, so never sent), with one of the characters
# that matter in the middle: left to itself, Hypothesis seldom draws a NUL.
SHARP = ["", "\x00", "\x00", "\x1f", "\x7f", "\u202e", "\ufeff", "🚀", "/", "%00"]
plain = st.text(st.characters(codec="utf-8"), max_size=20)
text = st.builds(lambda a, sharp, b: a + sharp + b, plain, st.sampled_from(SHARP), plain)
huge = st.integers(min_value=-(2**80), max_value=2**80)
scalar = st.none() | st.booleans() | huge | st.floats(allow_nan=False, allow_infinity=False) | text
json_value = st.recursive(
    scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def nested(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


deep = st.integers(min_value=1, max_value=600).map(nested)
field_values = st.dictionaries(st.sampled_from(FIELDS) | text, json_value | deep, max_size=6)
bodies = st.one_of(
    st.none(),
    json_value.map(msgspec.json.encode),
    field_values.map(msgspec.json.encode),
    st.builds(lambda extra: {**ASK, **extra}, field_values).map(msgspec.json.encode),
    st.builds(lambda d: {**ASK, "metadata": {"deep": d}}, deep).map(msgspec.json.encode),
    st.binary(max_size=60),
)
queries = st.dictionaries(st.sampled_from(QUERY), text, max_size=3)


def routes_of(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route the app mounts, HEAD and static files aside."""
    found = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("formatter") or info.get("path")
        if path is None or route.method == "HEAD":
            continue  # static files (prefix resources)
        found.add(("POST" if route.method == "*" else route.method, path))
    return sorted(found)


class Fixture:
    """The app and what it holds: a user, an API key, a session and an open request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: TestClient[Any, Any]) -> None:
        self.loop, self.client = loop, client
        self.credentials: list[dict[str, str]] = [{}]
        self.ids: dict[str, str] = {}

    async def populate(self) -> None:
        user = await sign_up(self.client, "fuzz")
        key = await self.client.post("/api/user/apikeys", json={}, headers=user.bearer)
        raw_key = (await key.json())["raw_key"]
        self.credentials += [user.bearer, {"X-API-Key": raw_key}]
        await self.client.post("/v1/sessions", json=SESSION, headers=user.bearer)
        asked = await self.client.post("/v1/requests", json=ASK, headers=user.bearer)
        self.ids = {
            "request_id": (await asked.json())["request_id"],
            "session_id": "deploys",
            "key_id": (await key.json())["id"],
        }

    async def send(
        self, method: str, path: str, body: bytes | None, query: dict[str, str], auth: int
    ) -> tuple[int, str, bytes]:
        headers = {"Content-Type": "application/json", **self.credentials[auth]}
        async with self.client.request(
            method, path, data=body, params=query, headers=headers, allow_redirects=False
        ) as response:
            # An event stream that started would never end: its status is all we need.
            stream = response.content_type == "text/event-stream"
            return response.status, response.content_type, b"" if stream else await response.read()


@pytest.fixture
def app(store_url: str, config: Config) -> Iterator[Fixture]:
    loop = asyncio.new_event_loop()
    store = loop.run_until_complete(open_store(store_url))
    config = msgspec.structs.replace(config, auth=AuthConfig(jwt_secret=TEST_JWT_SECRET))

    async def start() -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(config, store=store)))
        await client.start_server()
        return client

    client = loop.run_until_complete(start())
    fixture = Fixture(loop, client)
    loop.run_until_complete(fixture.populate())
    yield fixture
    loop.run_until_complete(client.close())
    loop.run_until_complete(store.close())
    loop.close()


def route_check(app: Fixture, method: str, template: str, counter: list[int]) -> Any:
    """A Hypothesis test of one route: generated path parameters, query, body and caller."""

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        body=bodies,
        query=queries,
        auth=st.integers(min_value=0, max_value=2),
        params=st.fixed_dictionaries(
            {name: st.sampled_from([None]) | text for name in PARAM.findall(template)}
        ),
    )
    def check(
        body: bytes | None, query: dict[str, str], auth: int, params: dict[str, str | None]
    ) -> None:
        counter[0] += 1
        # None: the id of something that exists (the open request, the session, the key).
        path = PARAM.sub(lambda m: quote(params[m[1]] or app.ids.get(m[1], "x"), safe=""), template)
        sent = None if method in ("GET", "DELETE") and body is None else body
        status, kind, raw = app.loop.run_until_complete(app.send(method, path, sent, query, auth))
        where = f"{method} {path} {query} body={sent!r:.200}"
        assert status < 500, f"{status} from {where}: {raw[:300]!r}"
        if 400 <= status < 500 and not path.startswith(("/console", "/mcp")):
            assert kind == "application/json", where
            error = msgspec.json.decode(raw)
            assert set(error) == {"error"} and set(error["error"]) == {"code", "message"}, where

    return check


def test_no_route_answers_5xx_to_generated_input(app: Fixture, store_url: str) -> None:
    routes = routes_of(app.client.app)
    assert len(routes) > 40, routes
    counter = [0]
    started = time.monotonic()

    for method, template in routes:
        route_check(app, method, template, counter)()

    backend = store_url.split(":", 1)[0]
    took = time.monotonic() - started
    print(f"\n{backend}: {counter[0]} generated cases over {len(routes)} routes in {took:.1f}s")
