"""Helpers shared by the HITL API tests (imported as a plain module, not a test file)."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import AppRunner

from loopgate.store.base import EventStore

Client = TestClient[Any, Any]

# The reference README's Python example, with its emoji decoded.
DEPLOY, HOLD, REVIEW = "🚀 Deploy", "⏸️ Hold", "🔍 Review First"
README_SESSION = {
    "session_id": "production-deploy-bot",
    "client_id": "ci-cd-pipeline",
    "telegram_id": 123456789,
}
README_REQUEST = {
    "session_id": "production-deploy-bot",
    "client_id": "ci-cd-pipeline",
    "message": "Deploy v2.1.0 to production? All tests passed ✅",
    "options": [DEPLOY, HOLD, REVIEW],
    "metadata": {
        "version": "v2.1.0",
        "tests_passed": 847,
        "code_coverage": "94.2%",
        "environment": "production",
    },
}
# The reference README's curl flow.
CURL_SESSION = {"session_id": "test", "client_id": "test", "telegram_id": 123456789}
CURL_REQUEST = {"session_id": "test", "client_id": "test", "message": "Test message"}
POLL_FIELDS = ("request_id", "status", "completed", "approved", "response")


class ServeLikeServer(TestServer):
    """A test server that, like ``loopgate serve``, does not cancel handlers on hang-up.

    (aiohttp's TestServer cancels a handler when its client disconnects; the
    production runner does not, so a long-poll must notice the hang-up itself.)
    """

    async def _make_runner(self, **kwargs: Any) -> AppRunner:
        return AppRunner(self.app, **{**kwargs, "handler_cancellation": False})


async def register(client: Client, session: dict[str, Any] = README_SESSION) -> None:
    response = await client.post("/hitl/register", json=session)
    assert response.status == 200, await response.text()


async def create(client: Client, body: dict[str, Any] | None = None, **fields: Any) -> str:
    """Create a request on /hitl/request (the README's, with ``fields`` changed); its id."""
    response = await client.post("/hitl/request", json={**(body or README_REQUEST), **fields})
    assert response.status == 200, await response.text()
    result = await response.json()
    assert result["success"] is True
    assert result["status"] == "pending"
    request_id: str = result["request_id"]
    return request_id


async def answer(client: Client, request_id: str, **body: Any) -> ClientResponse:
    """An operator's answer: ``option=`` or ``text=``."""
    return await client.post(f"/v1/requests/{request_id}/response", json=body)


async def poll(client: Client, request_id: str, **query: Any) -> dict[str, Any]:
    response = await client.get("/hitl/poll", params={"request_id": request_id, **query})
    assert response.status == 200, await response.text()
    result: dict[str, Any] = await response.json()
    return result


def reference_fields(status: dict[str, Any]) -> dict[str, Any]:
    """The fields of a poll answer that the reference server has."""
    return {name: status[name] for name in POLL_FIELDS}


async def session_status(
    client: Client, session_id: str = "production-deploy-bot"
) -> dict[str, Any]:
    response = await client.get("/hitl/status", params={"session_id": session_id})
    assert response.status == 200, await response.text()
    status: dict[str, Any] = await response.json()
    return status


async def assert_error(response: ClientResponse, status: int, code: str) -> str:
    """Assert the status and the JSON error shape; return the message."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code, body
    message: str = body["error"]["message"]
    assert message
    return message


async def event_types(store: EventStore, stream: str | None = None) -> list[str]:
    """The types of the events in ``stream``, or in the whole log."""
    if stream is not None:
        return [r.type for r in await store.read_stream(stream)]
    return [r.type for r in await store.read_all(0, 100_000)]
