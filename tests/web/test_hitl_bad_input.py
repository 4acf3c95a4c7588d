"""A table of bad inputs: each is refused with the right status and code, in the
JSON error shape, and leaves the log exactly as it was."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest
from hitl_helpers import CURL_REQUEST, Client, assert_error, create, register

from loopgate.store.base import EventStore

OPTIONS = ["Yes", "No"]
REQUEST = {**CURL_REQUEST, "options": OPTIONS}  # session "test" is registered by the fixture
RID = "{rid}"  # replaced by the id of an open request on session "test"


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    body: Any = None  # a dict/list is sent as JSON, bytes as they are, None as no body
    status: int = 400
    code: str = "validation_failed"
    mentions: str | None = None  # a word the error message must contain
    query: dict[str, str] = field(default_factory=dict)


def ask(**fields: Any) -> dict[str, Any]:
    return {**REQUEST, **fields}


def post(id: str, path: str, body: Any, status: int = 400, code: str = "", **kw: Any) -> Case:
    return Case(id, "POST", path, body, status, code or "validation_failed", **kw)


def get(
    id: str, path: str, query: dict[str, str], status: int = 400, code: str = "", **kw: Any
) -> Case:
    return Case(id, "GET", path, None, status, code or "validation_failed", query=query, **kw)


HITL, V1, ANSWER = "/hitl/request", "/v1/requests", f"/v1/requests/{RID}/response"
BAD_JSON = "invalid_json"
NO_SESSION, NO_REQUEST = "session_not_found", "request_not_found"
GHOST_REQUEST = "/v1/requests/ghost"

CASES = [
    # malformed or missing JSON
    post("malformed-json", HITL, b'{"session_id": "test",', code=BAD_JSON),
    post("malformed-json-v1", V1, b"{'single': 'quotes'}", code=BAD_JSON),
    post("malformed-json-register", "/hitl/register", b"{]", code=BAD_JSON),
    post("malformed-json-answer", ANSWER, b"nope", code=BAD_JSON),
    post("empty-body", HITL, b"", code=BAD_JSON),
    post("empty-body-register", "/hitl/register", b"", code=BAD_JSON),
    post("empty-body-answer", ANSWER, b"", code=BAD_JSON),
    post("not-an-object", HITL, ["test", "test", "hello"]),
    # wrong types
    post("message-int", HITL, ask(message=5), mentions="message"),
    post("message-int-v1", V1, ask(message=5), mentions="message"),
    post("options-string", HITL, ask(options="Yes"), mentions="options"),
    post("option-int", HITL, ask(options=["Yes", 2]), mentions="options"),
    post("metadata-list", HITL, ask(metadata=[1, 2]), mentions="metadata"),
    post("timeout-string", HITL, ask(timeout_seconds="60"), mentions="timeout_seconds"),
    post("on-timeout-unknown", V1, ask(on_timeout="maybe"), mentions="on_timeout"),
    post("request-type-unknown", HITL, ask(request_type="poll"), mentions="request_type"),
    post(
        "telegram-id-string",
        "/hitl/register",
        {"session_id": "x", "client_id": "y", "telegram_id": "abc"},
        mentions="telegram_id",
    ),
    # Past int64: SQLite's INTEGER and Postgres' BIGINT cannot hold it (schemathesis found it).
    post(
        "telegram-id-past-int64",
        "/hitl/register",
        {"session_id": "x", "client_id": "y", "telegram_id": 2**63},
        mentions="telegram_id",
    ),
    post(
        "telegram-id-past-int64-v1",
        "/v1/sessions",
        {"session_id": "x", "client_id": "y", "telegram_id": -(2**63) - 1},
        mentions="telegram_id",
    ),
    post("answer-option-int", ANSWER, {"option": 1}, mentions="option"),
    # missing fields
    post("no-session-id", HITL, {"client_id": "test", "message": "hi"}, mentions="session_id"),
    post("no-message", V1, {"session_id": "test", "client_id": "test"}, mentions="message"),
    post("no-client-id", HITL, {"session_id": "test", "message": "hi"}, mentions="client_id"),
    post("blank-session-id", HITL, ask(session_id="  "), mentions="session_id"),
    post(
        "register-no-telegram-id",
        "/hitl/register",
        {"session_id": "x", "client_id": "y"},
        mentions="telegram_id",
    ),
    post("register-v1-no-client-id", "/v1/sessions", {"session_id": "x"}, mentions="client_id"),
    post("deactivate-no-session-id", "/hitl/deactivate", {}, mentions="session_id"),
    post("cancel-no-request-id", "/hitl/cancel", {}, mentions="request_id"),
    post("answer-neither", ANSWER, {}, mentions="option"),
    post("answer-both", ANSWER, {"option": "Yes", "text": "x"}),
    get("poll-no-request-id", "/hitl/poll", {}, mentions="request_id"),
    get("status-no-session-id", "/hitl/status", {}, mentions="session_id"),
    # unknown or closed sessions
    post("unknown-session", HITL, ask(session_id="ghost"), 404, NO_SESSION),
    post("unknown-session-v1", V1, ask(session_id="ghost"), 404, NO_SESSION),
    get("unknown-session-status", "/hitl/status", {"session_id": "ghost"}, 404, NO_SESSION),
    post(
        "unknown-session-deactivate", "/hitl/deactivate", {"session_id": "ghost"}, 404, NO_SESSION
    ),
    post("inactive-session", HITL, ask(session_id="off"), 409, "session_inactive"),
    post("inactive-session-v1", V1, ask(session_id="off"), 409, "session_inactive"),
    # unknown requests
    get("unknown-request-poll", "/hitl/poll", {"request_id": "ghost"}, 404, NO_REQUEST),
    get(
        "unknown-request-long-poll",
        "/hitl/poll",
        {"request_id": "ghost", "wait": "5"},
        404,
        NO_REQUEST,
    ),
    get("unknown-request-v1", GHOST_REQUEST, {}, 404, NO_REQUEST),
    get("unknown-request-v1-long-poll", GHOST_REQUEST, {"wait": "5"}, 404, NO_REQUEST),
    post("unknown-request-answer", f"{GHOST_REQUEST}/response", {"option": "Yes"}, 404, NO_REQUEST),
    post("unknown-request-cancel-v1", f"{GHOST_REQUEST}/cancel", None, 404, NO_REQUEST),
    post("unknown-request-cancel", "/hitl/cancel", {"request_id": "ghost"}, 404, NO_REQUEST),
    # answers the request does not allow
    post("unknown-option", ANSWER, {"option": "Maybe"}, 422, "unknown_option"),
    post("option-wrong-case", ANSWER, {"option": "yes"}, 422, "unknown_option"),
    post("text-on-options-only", ANSWER, {"text": "sure"}, 422, "text_not_allowed"),
    # fields only Loopgate sets
    post("preset-status", HITL, ask(status="completed"), mentions="status"),
    post("preset-approved", HITL, ask(approved=True), mentions="approved"),
    post("preset-response", HITL, ask(response="Yes"), mentions="response"),
    post("preset-approved-v1", V1, ask(approved=False), mentions="approved"),
    # limits
    post("message-4001", HITL, ask(message="m" * 4001), mentions="message"),
    post("message-blank", HITL, ask(message="   "), mentions="message"),
    post("options-11", HITL, ask(options=[f"o{i}" for i in range(11)]), mentions="options"),
    post("options-duplicate", HITL, ask(options=["Yes", "No", "Yes"]), mentions="options"),
    post("options-duplicate-case", V1, ask(options=["Yes", "yes "]), mentions="options"),
    post("option-empty", HITL, ask(options=["Yes", ""]), mentions="options"),
    post("option-101", HITL, ask(options=["o" * 101]), mentions="options"),
    post("metadata-over-16k", HITL, ask(metadata={"blob": "x" * 16_384}), mentions="metadata"),
    post("timeout-0", HITL, ask(timeout_seconds=0), mentions="timeout_seconds"),
    post("timeout-604801", V1, ask(timeout_seconds=604_801), mentions="timeout_seconds"),
    post("callback-not-http", HITL, ask(callback_url="ftp://x"), mentions="callback_url"),
    post("body-3mb", HITL, ask(message="x" * 3_000_000), 413, "payload_too_large"),
    post("body-3mb-register", "/hitl/register", b" " * 3_000_000, 413, "payload_too_large"),
]


@pytest.fixture
async def open_request(client: Client) -> str:
    """Session "test" with one open request (options Yes/No), and session "off", deactivated."""
    await register(client, {"session_id": "test", "client_id": "test", "telegram_id": 1})
    await register(client, {"session_id": "off", "client_id": "test", "telegram_id": 1})
    response = await client.post("/hitl/deactivate", json={"session_id": "off"})
    assert response.status == 200
    return await create(client, REQUEST)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_refused_and_writes_nothing(
    client: Client, store: EventStore, open_request: str, case: Case
) -> None:
    path = case.path.replace(RID, open_request)
    raw = case.body if isinstance(case.body, bytes | None) else msgspec.json.encode(case.body)
    # A file-like body: aiohttp warns about sending megabytes of raw bytes at once.
    data = io.BytesIO(raw) if raw is not None else None
    head = await store.head()

    response = await client.request(
        case.method,
        path,
        data=data,
        params=case.query,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )

    message = await assert_error(response, case.status, case.code)
    if case.mentions is not None:
        assert case.mentions in message
    assert await store.head() == head
    status = await (await client.get("/hitl/poll", params={"request_id": open_request})).json()
    assert status["status"] == "pending"


def test_the_table_covers_every_required_case() -> None:
    ids = {c.id for c in CASES}
    assert len(ids) == len(CASES)
    codes = {(c.status, c.code) for c in CASES}
    assert {
        (400, "invalid_json"),
        (400, "validation_failed"),
        (404, "session_not_found"),
        (404, "request_not_found"),
        (409, "session_inactive"),
        (413, "payload_too_large"),
        (422, "unknown_option"),
    } <= codes
