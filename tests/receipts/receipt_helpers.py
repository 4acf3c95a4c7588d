"""Helpers for the receipts tests (imported as a plain module): ask, approve, redeem."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

Client = TestClient[Any, Any]
WIRE = {"tool": "wire_transfer", "args": {"amount": 1500000, "to": "ACME"}}


class FakeClock:
    """The app's clock (the receipts' expiry and redemption times), moved by hand."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def ask(
    client: Client,
    action: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> str:
    """A new request with ``action`` (the wire transfer by default); its id."""
    session = f"s-{uuid.uuid4().hex[:8]}"
    made = await client.post(
        "/v1/sessions", json={"session_id": session, "client_id": "agent"}, headers=headers
    )
    assert made.status in (200, 201), await made.text()
    body = {
        "session_id": session,
        "client_id": "agent",
        "message": "Wire the money?",
        "options": ["Approve", "Reject"],
        "action": WIRE if action is None else action,
    }
    asked = await client.post("/v1/requests", json=body, headers=headers)
    assert asked.status == 201, await asked.text()
    request_id: str = (await asked.json())["request_id"]
    return request_id


async def answer(
    client: Client, request_id: str, option: str = "Approve", headers: dict[str, str] | None = None
) -> None:
    answered = await client.post(
        f"/v1/requests/{request_id}/response", json={"option": option}, headers=headers
    )
    assert answered.status == 200, await answered.text()


async def decision(
    client: Client, request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    got = await client.get(f"/v1/requests/{request_id}", headers=headers)
    assert got.status == 200, await got.text()
    found: dict[str, Any] = await got.json()
    return found


async def approved(
    client: Client, action: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A request with ``action``, approved; as ``GET /v1/requests/{id}`` shows it."""
    request_id = await ask(client, action, headers)
    await answer(client, request_id, headers=headers)
    return await decision(client, request_id, headers)


async def redeem(
    client: Client,
    receipt: str,
    action: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    sent = {"receipt": receipt, "action": WIRE if action is None else action}
    response = await client.post("/v1/receipts/redeem", json=sent, headers=headers)
    body: dict[str, Any] = await response.json()
    return response.status, body


def error_code(body: dict[str, Any]) -> str:
    code: str = body["error"]["code"]
    return code
