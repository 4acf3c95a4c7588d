"""What the MCP tools need from Loopgate, in-process or over HTTP.

Both gates speak the ``/v1`` JSON shapes (``request_json``), so the tools read
one shape whatever the transport, and errors are :class:`LoopgateError` with
the same codes as the REST API.
"""

from __future__ import annotations

import hashlib
from typing import Any, Protocol

import msgspec

from loopgate.client import LoopgateClient, LoopgateClientError
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.errors import NotFound
from loopgate.receipts import Receipts
from loopgate.views import RequestView, public_request, request_json, session_json
from loopgate.wire import CreateRequestBody, decode_body

MCP_CLIENT_ID = "mcp"
OPEN_STATUSES = ("pending", "delivered")


def default_session_for(credential: str | None, base: str) -> str:
    """The session of a caller that names none: ``base``, or one per API key or token.

    A short hash of the credential keeps one tenant's keys and tokens apart
    (session ids are per tenant) without revealing anything of the key.
    """
    if not credential:
        return base
    return f"{base}-{hashlib.sha256(credential.encode()).hexdigest()[:12]}"


class Gate(Protocol):
    default_session: str

    async def ensure_session(self, session_id: str) -> None:
        """Register ``session_id`` (without a Telegram operator) unless it exists."""

    async def register_session(
        self, session_id: str, client_id: str, telegram_id: int | None
    ) -> dict[str, Any]: ...

    async def create_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create a request from a ``POST /v1/requests`` body."""

    async def get_request(self, request_id: str, wait_seconds: float) -> dict[str, Any]:
        """The request, once decided or after ``wait_seconds`` (0: at once)."""

    async def cancel_request(self, request_id: str, reason: str | None) -> dict[str, Any]: ...

    async def list_open(self, session_id: str | None, limit: int) -> list[dict[str, Any]]: ...


class LocalGate:
    """The server's own command handlers, acting for the caller the HTTP layer resolved."""

    def __init__(
        self,
        requests: Requests,
        sessions: Sessions,
        actor: Actor,
        default_session: str,
        receipts: Receipts | None = None,
    ) -> None:
        self.requests, self.sessions = requests, sessions
        self.actor, self.default_session = actor, default_session
        self.receipts = receipts

    async def _decision_json(self, view: RequestView) -> dict[str, Any]:
        """The request's ``/v1`` JSON, with its receipt when it was approved with an action."""
        receipt = await self.receipts.mint(view) if self.receipts is not None else None
        reply: dict[str, Any] = msgspec.to_builtins(public_request(view, receipt=receipt))
        return reply

    async def ensure_session(self, session_id: str) -> None:
        try:
            await self.sessions.get_session(session_id, self.actor)
        except NotFound:
            await self.sessions.register_session(session_id, MCP_CLIENT_ID, None, self.actor)

    async def register_session(
        self, session_id: str, client_id: str, telegram_id: int | None
    ) -> dict[str, Any]:
        view, _ = await self.sessions.register_session(
            session_id, client_id, telegram_id, self.actor
        )
        return session_json(view)

    async def create_request(self, body: dict[str, Any]) -> dict[str, Any]:
        # Through the REST body's decoder: the same checks and the same error messages.
        parsed = decode_body(msgspec.json.encode(body), CreateRequestBody)
        view, _ = await self.requests.create_from_body(parsed, self.actor, parsed.idempotency_key)
        return await self._decision_json(view)

    async def get_request(self, request_id: str, wait_seconds: float) -> dict[str, Any]:
        view = await self.requests.wait_for_decision(request_id, self.actor, wait_seconds)
        return await self._decision_json(view)

    async def cancel_request(self, request_id: str, reason: str | None) -> dict[str, Any]:
        return request_json(await self.requests.cancel(request_id, reason, self.actor))

    async def list_open(self, session_id: str | None, limit: int) -> list[dict[str, Any]]:
        views = await self.requests.list_requests(
            self.actor, statuses=OPEN_STATUSES, session_id=session_id, limit=limit
        )
        return [request_json(view) for view in views]


class RemoteGate:
    """A running server's ``/v1`` API, for the stdio MCP server."""

    def __init__(self, client: LoopgateClient, default_session: str) -> None:
        self.client, self.default_session = client, default_session

    async def ensure_session(self, session_id: str) -> None:
        try:
            await self.client.get_session(session_id)
        except LoopgateClientError as exc:
            if exc.status != NotFound.status:
                raise
            await self.client.register_session(session_id, MCP_CLIENT_ID)

    async def register_session(
        self, session_id: str, client_id: str, telegram_id: int | None
    ) -> dict[str, Any]:
        return await self.client.register_session(session_id, client_id, telegram_id)

    async def create_request(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.client.create_request(body)

    async def get_request(self, request_id: str, wait_seconds: float) -> dict[str, Any]:
        return await self.client.get_request(request_id, wait_seconds)

    async def cancel_request(self, request_id: str, reason: str | None) -> dict[str, Any]:
        return await self.client.cancel_request(request_id, reason)

    async def list_open(self, session_id: str | None, limit: int) -> list[dict[str, Any]]:
        return await self.client.list_requests(
            statuses=OPEN_STATUSES, session_id=session_id, limit=limit
        )
