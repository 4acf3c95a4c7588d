"""A NUL character anywhere a client can put one, and JSON nested too deeply, are
400s on both stores, and write nothing.

Postgres refuses NUL in text and JSONB outright, so before these rules such a
string reached the driver and came back as a 500; SQLite stored it. Deep JSON
reached the hash chain's canonical encoder, which recurses.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from account_helpers import AppClientFactory, Client, User, sign_up
from console_helpers import csrf_in, operator, submit
from hitl_helpers import assert_error

from loopgate.store.base import EventStore
from loopgate.wire import MAX_JSON_DEPTH

NUL = "\x00"
ID = quote(f"a{NUL}b")  # a path segment holding a NUL, percent-encoded as a client sends it
SESSION = {"session_id": "deploys", "client_id": "ci"}
ASK = {**SESSION, "message": "Deploy?", "options": ["Yes", "No"]}
RID = "{rid}"  # replaced by the id of an open request


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: Any = None
    query: dict[str, str] = field(default_factory=dict)
    mentions: str | None = None


def nul_cursor() -> str:
    raw = f"2026-01-01T00:00:00+00:00|a{NUL}b".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


NUL_CASES = [
    # JSON bodies
    Case("login-username", "POST", "/api/auth/login", {"username": f"a{NUL}", "password": "x"}),
    Case("login-password", "POST", "/api/auth/login", {"username": "a", "password": f"x{NUL}"}),
    Case("register", "POST", "/api/auth/register", {"username": f"a{NUL}", "password": "x" * 12}),
    Case("key-label", "POST", "/api/user/apikeys", {"label": f"ci{NUL}"}, mentions="label"),
    Case("register-session", "POST", "/hitl/register", {**SESSION, "session_id": f"s{NUL}"}),
    Case("v1-session", "POST", "/v1/sessions", {**SESSION, "client_id": f"c{NUL}"}),
    Case("ask-message", "POST", "/hitl/request", {**ASK, "message": f"hi{NUL}"}),
    Case("ask-metadata-key", "POST", "/v1/requests", {**ASK, "metadata": {f"k{NUL}": 1}}),
    Case("ask-idempotency", "POST", "/v1/requests", {**ASK, "idempotency_key": f"k{NUL}"}),
    Case("cancel-reason", "POST", f"/v1/requests/{RID}/cancel", {"reason": f"no{NUL}"}),
    Case("hitl-cancel-reason", "POST", "/hitl/cancel", {"request_id": RID, "reason": f"n{NUL}"}),
    Case("answer-text", "POST", f"/v1/requests/{RID}/response", {"text": f"ok{NUL}"}),
    Case("deactivate", "POST", "/hitl/deactivate", {"session_id": f"s{NUL}"}),
    # path parameters
    Case("get-request", "GET", f"/v1/requests/{ID}"),
    Case("get-session", "GET", f"/v1/sessions/{ID}"),
    Case("request-events", "GET", f"/v1/requests/{ID}/events"),
    Case("session-events", "GET", f"/v1/sessions/{ID}/events"),
    Case("history", "GET", f"/v1/requests/{ID}/history"),
    Case("answer-path", "POST", f"/v1/requests/{ID}/response", {"option": "Yes"}),
    Case("cancel-path", "POST", f"/v1/requests/{ID}/cancel"),
    Case("revoke-key", "DELETE", f"/api/user/apikeys/{ID}"),
    # query parameters
    Case("poll", "GET", "/hitl/poll", query={"request_id": f"a{NUL}"}, mentions="request_id"),
    Case("status", "GET", "/hitl/status", query={"session_id": f"a{NUL}"}, mentions="session_id"),
    Case("list", "GET", "/v1/requests", query={"session_id": f"a{NUL}"}, mentions="session_id"),
    Case("list-cursor", "GET", "/v1/requests", query={"cursor": nul_cursor()}, mentions="cursor"),
    Case("export-session", "GET", "/v1/audit/export", query={"session_id": f"a{NUL}"}),
    Case("export-request", "GET", "/v1/audit/export", query={"request_id": f"a{NUL}"}),
    Case("events-types", "GET", "/v1/events", query={"types": f"a{NUL}"}),
]


@pytest.fixture
async def client(app_client: AppClientFactory) -> Client:
    return await app_client()


@pytest.fixture
async def user(client: Client) -> User:
    user = await sign_up(client, "nul")
    response = await client.post("/v1/sessions", json=SESSION, headers=user.bearer)
    assert response.status == 201, await response.text()
    return user


@pytest.fixture
async def open_request(client: Client, user: User) -> str:
    response = await client.post("/v1/requests", json=ASK, headers=user.bearer)
    assert response.status == 201, await response.text()
    request_id: str = (await response.json())["request_id"]
    return request_id


def _filled(value: Any, request_id: str) -> Any:
    if isinstance(value, dict):
        return {k: _filled(v, request_id) for k, v in value.items()}
    return value.replace(RID, request_id) if isinstance(value, str) else value


@pytest.mark.parametrize("case", NUL_CASES, ids=[c.id for c in NUL_CASES])
async def test_a_nul_anywhere_is_a_400_and_writes_nothing(
    client: Client, store: EventStore, user: User, open_request: str, case: Case
) -> None:
    head = await store.head()
    response = await client.request(
        case.method,
        _filled(case.path, open_request),
        json=_filled(case.body, open_request),
        params=case.query,
        headers=user.bearer,
    )
    message = await assert_error(response, 400, "validation_failed")
    if case.mentions is not None:
        assert case.mentions in message
    assert await store.head() == head


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep: arrays around an object around a string."""
    value: Any = {"leaf": "x"}
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("path", ["/hitl/request", "/v1/requests"])
async def test_metadata_nested_490_deep_is_a_400_naming_the_field(
    client: Client, store: EventStore, user: User, path: str
) -> None:
    head = await store.head()
    body = {**ASK, "metadata": {"deep": nested(490)}}
    response = await client.post(path, json=body, headers=user.bearer)
    message = await assert_error(response, 400, "validation_failed")
    assert "metadata" in message and str(MAX_JSON_DEPTH) in message
    assert await store.head() == head


async def test_json_nested_one_level_too_deep_is_a_400(client: Client, user: User) -> None:
    # The body is level 1 and metadata level 2: metadata's value may go 30 levels further.
    at_limit = {**ASK, "metadata": {"deep": nested(MAX_JSON_DEPTH - 2)}}
    response = await client.post("/v1/requests", json=at_limit, headers=user.bearer)
    assert response.status == 201, await response.text()

    too_deep = {**ASK, "metadata": {"deep": nested(MAX_JSON_DEPTH - 1)}}
    response = await client.post("/v1/requests", json=too_deep, headers=user.bearer)
    await assert_error(response, 400, "validation_failed")


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/auth/login", "username"),
        ("/hitl/register", "session_id"),
        ("/v1/sessions", "client_id"),
        ("/api/user/apikeys", "label"),
        ("/v1/requests", "status"),  # typed Any: refused as set by Loopgate
    ],
)
async def test_any_field_nested_490_deep_is_a_400(
    client: Client, user: User, path: str, name: str
) -> None:
    body = {**ASK, "username": "u", "password": "p", name: nested(490)}
    response = await client.post(path, json=body, headers=user.bearer)
    await assert_error(response, 400, "validation_failed")


async def test_a_nul_in_the_console_sign_in_form_is_refused(client: Client) -> None:
    form = await client.get("/console/login")
    fields = {"csrf_token": csrf_in(await form.text()), "username": f"a{NUL}", "password": "x"}
    response = await client.post("/console/login", data=fields, allow_redirects=False)
    assert response.status == 400, await response.text()


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/console/keys/revoke", {"key_id": f"a{NUL}"}),
        ("/console/sessions", {"session_id": f"s{NUL}", "client_id": "ci"}),
        ("/console/sessions/deactivate", {"session_id": f"s{NUL}"}),
        ("/console/keys", {"label": f"ci{NUL}"}),
    ],
)
async def test_a_nul_in_a_console_form_is_a_400_page(
    client: Client, store: EventStore, path: str, fields: dict[str, str]
) -> None:
    await operator(client)
    head = await store.head()
    response = await submit(client, path, **fields)
    assert response.status == 400, await response.text()
    assert await store.head() == head


async def test_a_nul_in_a_console_path_is_a_400_page(client: Client) -> None:
    await operator(client)
    response = await client.get(f"/console/requests/{ID}")
    assert response.status == 400, await response.text()
