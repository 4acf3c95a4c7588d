"""The Go reference's JSON shapes, as data, checked on every ``/hitl`` route on both stores.

The shapes are the reference server's (its ``internal/types`` structs and the
maps its ``internal/handlers/hitl.go`` writes): each key with its JSON type,
and which keys Go leaves out when empty (``omitempty``). A Loopgate reply may
carry more keys, never fewer, and never a key of another JSON type: that is
what keeps the reference's existing clients working.
"""

from __future__ import annotations

from typing import Any

import pytest
from hitl_helpers import (
    DEPLOY,
    README_REQUEST,
    README_SESSION,
    Client,
    answer,
    assert_error,
    create,
    register,
)

STRING, BOOL, NUMBER, ARRAY, OBJECT = "string", "boolean", "number", "array", "object"


class Shape:
    """A JSON object's keys and types; ``optional`` keys may be left out (Go's ``omitempty``)."""

    def __init__(self, required: dict[str, Any], optional: dict[str, Any] | None = None) -> None:
        self.required, self.optional = required, optional or {}


def shape_of(kind: Any) -> Shape | None:
    return kind if isinstance(kind, Shape) else None


HITL_REQUEST = Shape(
    {
        "id": STRING,
        "session_id": STRING,
        "client_id": STRING,
        "message": STRING,
        "request_type": STRING,
        "timeout_seconds": NUMBER,
        "status": STRING,
        "approved": BOOL,
        "created_at": STRING,
    },
    {
        "options": [STRING],
        "callback_url": STRING,
        "metadata": OBJECT,
        "response": STRING,
        "responded_at": STRING,
    },
)
SESSION = Shape(
    {"id": STRING, "client_id": STRING, "telegram_id": NUMBER, "active": BOOL, "created_at": STRING}
)
REFERENCE: dict[str, Shape] = {
    "POST /hitl/register": Shape({"success": BOOL, "session_id": STRING, "message": STRING}),
    "POST /hitl/request": Shape(
        {"success": BOOL, "request_id": STRING, "status": STRING, "created_at": STRING}
    ),
    "GET /hitl/poll": Shape(
        {"request_id": STRING, "status": STRING, "approved": BOOL, "completed": BOOL},
        {"response": STRING},
    ),
    "GET /hitl/status": SESSION,
    "GET /hitl/pending": Shape({"pending_requests": [HITL_REQUEST], "count": NUMBER}),
    "POST /hitl/deactivate": Shape({"success": BOOL, "message": STRING}),
    "POST /hitl/cancel": Shape({"success": BOOL, "message": STRING}),
}
REFERENCE_STATUSES = {"pending", "completed", "timeout", "canceled"}


def mismatches(value: Any, kind: Any, where: str = "$") -> list[str]:
    """Where ``value`` breaks the reference's ``kind``: empty when a Go client can read it."""
    if isinstance(kind, Shape):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        found = [f"{where}.{key}: missing" for key in kind.required if key not in value]
        for key, inner in {**kind.required, **kind.optional}.items():
            if key in value:
                found += mismatches(value[key], inner, f"{where}.{key}")
        return found
    if isinstance(kind, list):
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        return [
            m for i, item in enumerate(value) for m in mismatches(item, kind[0], f"{where}[{i}]")
        ]
    json_type = {
        STRING: str,
        BOOL: bool,
        OBJECT: dict,
        ARRAY: list,
    }.get(kind)
    if kind == NUMBER:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        assert json_type is not None, kind
        ok = isinstance(value, json_type)
    return [] if ok else [f"{where}: expected {kind}, got {type(value).__name__}"]


async def reply(client: Client, route: str, **kwargs: Any) -> dict[str, Any]:
    """Call ``route`` ("METHOD /path"); assert 200 and the reference's shape; the JSON."""
    method, path = route.split(" ")
    response = await client.request(method, path, **kwargs)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    assert mismatches(body, REFERENCE[route]) == [], body
    return body


def test_the_checker_refuses_what_a_go_client_could_not_read() -> None:
    session = {"id": "s", "client_id": "c", "telegram_id": 1, "active": True, "created_at": "t"}
    assert mismatches(session, SESSION) == []
    assert mismatches({**session, "extra": [1]}, SESSION) == []
    assert mismatches({**session, "telegram_id": None}, SESSION) == [
        "$.telegram_id: expected number, got NoneType"
    ]
    assert mismatches({k: v for k, v in session.items() if k != "id"}, SESSION) == ["$.id: missing"]
    assert mismatches({**session, "active": 1}, SESSION) == ["$.active: expected boolean, got int"]
    listed = {"pending_requests": [{"id": 3}], "count": 1}
    assert "$.pending_requests[0].id: expected string, got int" in mismatches(
        listed, REFERENCE["GET /hitl/pending"]
    )


async def test_every_hitl_route_answers_the_reference_shape(client: Client) -> None:
    await reply(client, "POST /hitl/register", json=README_SESSION)
    created = await reply(client, "POST /hitl/request", json=README_REQUEST)
    request_id = created["request_id"]
    assert created["status"] == "pending"

    polled = await reply(client, "GET /hitl/poll", params={"request_id": request_id})
    assert (polled["status"], polled["completed"]) == ("pending", False)

    session = await reply(
        client, "GET /hitl/status", params={"session_id": README_SESSION["session_id"]}
    )
    assert (session["id"], session["client_id"]) == ("production-deploy-bot", "ci-cd-pipeline")
    assert (session["telegram_id"], session["active"]) == (123456789, True)

    pending = await reply(client, "GET /hitl/pending")
    assert pending["count"] == 1
    [listed] = pending["pending_requests"]
    assert (listed["id"], listed["status"], listed["approved"]) == (request_id, "pending", False)
    assert listed["options"] == README_REQUEST["options"]
    assert listed["metadata"] == README_REQUEST["metadata"]
    assert listed["request_type"] == "choice"
    assert "responded_at" not in listed and "response" not in listed

    assert (await answer(client, request_id, option=DEPLOY)).status == 200
    polled = await reply(client, "GET /hitl/poll", params={"request_id": request_id})
    assert (polled["status"], polled["response"], polled["approved"]) == ("completed", DEPLOY, True)

    other = await create(client)
    cancelled = await reply(client, "POST /hitl/cancel", json={"request_id": other})
    assert cancelled["success"] is True
    polled = await reply(client, "GET /hitl/poll", params={"request_id": other})
    assert (polled["status"], polled["completed"]) == ("canceled", True)
    assert (await reply(client, "GET /hitl/pending"))["count"] == 0

    done = await reply(
        client, "POST /hitl/deactivate", json={"session_id": README_SESSION["session_id"]}
    )
    assert done["success"] is True
    session = await reply(
        client, "GET /hitl/status", params={"session_id": README_SESSION["session_id"]}
    )
    assert session["active"] is False


async def test_a_session_without_telegram_reads_telegram_id_zero(client: Client) -> None:
    created = await client.post("/v1/sessions", json={"session_id": "bot", "client_id": "ci"})
    assert created.status == 201, await created.text()
    session = await reply(client, "GET /hitl/status", params={"session_id": "bot"})
    assert session["telegram_id"] == 0


async def test_a_free_text_request_is_listed_without_options(client: Client) -> None:
    await register(client)
    request_id = await create(client, {**README_REQUEST, "options": []})
    [listed] = (await reply(client, "GET /hitl/pending"))["pending_requests"]
    assert listed["id"] == request_id
    assert "options" not in listed
    assert listed["status"] in REFERENCE_STATUSES


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/hitl/poll", {}),
        ("GET", "/hitl/status", {}),
        ("POST", "/hitl/deactivate", {"json": {}}),
        ("POST", "/hitl/cancel", {"json": {}}),
        ("POST", "/hitl/register", {"json": {"client_id": "ci"}}),
        ("POST", "/hitl/request", {"json": {"session_id": "s", "client_id": "ci"}}),
    ],
)
async def test_a_missing_parameter_is_400(
    client: Client, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    response = await client.request(method, path, **kwargs)
    assert response.status == 400, await response.text()
    assert set((await response.json())["error"]) == {"code", "message"}


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "code"),
    [
        ("GET", "/hitl/poll", {"params": {"request_id": "nope"}}, "request_not_found"),
        ("GET", "/hitl/status", {"params": {"session_id": "nope"}}, "session_not_found"),
        ("POST", "/hitl/deactivate", {"json": {"session_id": "nope"}}, "session_not_found"),
        ("POST", "/hitl/cancel", {"json": {"request_id": "nope"}}, "request_not_found"),
        (
            "POST",
            "/hitl/request",
            {"json": {**README_REQUEST, "session_id": "nope"}},
            "session_not_found",
        ),
    ],
)
async def test_an_unknown_request_or_session_is_404(
    client: Client, method: str, path: str, kwargs: dict[str, Any], code: str
) -> None:
    await assert_error(await client.request(method, path, **kwargs), 404, code)
