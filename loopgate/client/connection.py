"""The async client of a running Loopgate server's ``/v1`` API.

Used by ``loopgate mcp`` and ``loopgate ask``; usable from any asyncio program::

    async with LoopgateClient("http://127.0.0.1:8080", api_key="lk_pub_…") as gate:
        decision = await gate.ask("Deploy v2.1?", options=["Deploy", "Hold"], timeout=600)
        if decision.approved: ...

:meth:`LoopgateClient.ask` is :meth:`~LoopgateClient.submit` then
:meth:`~LoopgateClient.wait`; ``wait`` listens on the request's SSE stream
(``GET /v1/requests/{id}/events``) and falls back to long-polls when the stream
cannot be had (a proxy that buffers, an older server). The lower-level methods
return the server's JSON objects as they are. Errors are the typed
``LoopgateClientError``s of ``client/decision.py``.

Built on aiohttp: a direct dependency of Loopgate, already loaded by the
server, with an async API; the sync client (``client/sync.py``) drives this
one on a private event loop, so both share every line of protocol code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import aiohttp
import msgspec

from loopgate import __version__
from loopgate.client.decision import Decision, LoopgateClientError, WaitTimedOut, error_for

# Long-polls hold a request open for their wait; the socket timeout must outlast it.
WAIT_MARGIN_SECONDS = 30.0
LONG_POLL_SECONDS = 30.0
DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_SESSION = "loopgate-client"
# A request's own expiry is the server's to decide; the client waits a little longer
# so it sees the expiry rather than giving up a moment before it.
EXPIRY_GRACE_SECONDS = 10.0
DEFAULT_CLIENT = "loopgate-client"
Option = str | Mapping[str, Any]


class AskFields(TypedDict, total=False):
    """What ``ask`` takes besides the message; see :meth:`LoopgateClient.submit`."""

    options: Sequence[Option]
    metadata: Mapping[str, Any] | None
    timeout: int | None
    session_id: str | None
    client_id: str
    action: Mapping[str, Any] | None
    editable: bool
    args_schema: Mapping[str, Any] | None


class SubmitFields(AskFields, total=False):
    callback_url: str | None
    idempotency_key: str | None


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


class LoopgateClient:
    """``base_url`` and ``api_key`` default to ``LOOPGATE_URL`` and ``LOOPGATE_API_KEY``."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None) -> None:
        base_url = base_url or os.environ.get("LOOPGATE_URL") or DEFAULT_URL
        api_key = api_key or os.environ.get("LOOPGATE_API_KEY") or None
        self.base_url = base_url.rstrip("/")
        headers = {"User-Agent": f"loopgate-client/{__version__}"}
        if api_key:
            headers["X-API-Key"] = api_key
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LoopgateClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        return self._session

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        wait_seconds: float = 0,
    ) -> Any:
        timeout = aiohttp.ClientTimeout(total=wait_seconds + WAIT_MARGIN_SECONDS)
        try:
            async with self._http().request(
                method, self.base_url + path, json=json, params=params, timeout=timeout
            ) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise error_for(
                0,
                "server_unreachable",
                f"no answer from {self.base_url}: {exc or type(exc).__name__}",
            ) from exc
        try:
            body = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            body = None
        if response.status >= 400:
            # Loopgate's errors are {"error": {"code", "message"}}; a proxy's may be anything.
            error = body.get("error", {}) if isinstance(body, dict) else {}
            message = error.get("message") or raw.decode(errors="replace")[:200]
            raise error_for(
                response.status,
                error.get("code", "http_error"),
                message or f"HTTP {response.status}",
            )
        if body is None:
            raise error_for(0, "invalid_response", f"{self.base_url} answered with no JSON")
        return body

    async def register_session(
        self, session_id: str, client_id: str, telegram_id: int | None = None
    ) -> dict[str, Any]:
        body = {"session_id": session_id, "client_id": client_id, "telegram_id": telegram_id}
        result: dict[str, Any] = await self._call("POST", "/v1/sessions", json=body)
        return result

    async def get_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", _path("v1", "sessions", session_id))
        return result

    async def create_request(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", "/v1/requests", json=body)
        return result

    async def get_request(self, request_id: str, wait_seconds: float = 0) -> dict[str, Any]:
        """The request; with ``wait_seconds``, a long-poll that returns once it is decided."""
        params = {"wait": f"{wait_seconds:g}"} if wait_seconds > 0 else None
        result: dict[str, Any] = await self._call(
            "GET", _path("v1", "requests", request_id), params=params, wait_seconds=wait_seconds
        )
        return result

    async def cancel_request(self, request_id: str, reason: str | None = None) -> dict[str, Any]:
        body = {"reason": reason} if reason else {}
        result: dict[str, Any] = await self._call(
            "POST", _path("v1", "requests", request_id, "cancel"), json=body
        )
        return result

    async def answer(
        self,
        request_id: str,
        *,
        option: str | None = None,
        text: str | None = None,
        args: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Answer as an operator; ``args`` approves an editable request's action as edited."""
        body: dict[str, Any] = {"option": option} if option is not None else {"text": text}
        if args is not None:
            body["args"] = dict(args)
        result: dict[str, Any] = await self._call(
            "POST", _path("v1", "requests", request_id, "response"), json=body
        )
        return result

    async def redeem_receipt(self, receipt: str, action: Mapping[str, Any]) -> dict[str, Any]:
        """Use the receipt up for ``action`` ``{tool, args}``, the call about to run.

        Once only: a second redemption is 409 ``receipt_already_redeemed``;
        another action 422 ``action_mismatch``; too late 410 ``receipt_expired``.
        """
        body = {"receipt": receipt, "action": {"tool": action["tool"], "args": action["args"]}}
        result: dict[str, Any] = await self._call("POST", "/v1/receipts/redeem", json=body)
        return result

    async def jwks(self) -> dict[str, Any]:
        """The server's public receipt keys, for :func:`loopgate.client.verify_receipt`."""
        result: dict[str, Any] = await self._call("GET", "/.well-known/jwks.json")
        return result

    async def list_requests(
        self, *, statuses: tuple[str, ...] = (), session_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        params = {"limit": str(limit)}
        if statuses:
            params["status"] = ",".join(statuses)
        if session_id:
            params["session_id"] = session_id
        result = await self._call("GET", "/v1/requests", params=params)
        requests: list[dict[str, Any]] = result["requests"]
        return requests

    # --- asking -----------------------------------------------------------------

    async def submit(self, message: str, **fields: Unpack[SubmitFields]) -> str:
        """Ask without waiting; returns the request id.

        ``timeout`` is the request's own (seconds until it expires on the
        server, by its ``on_timeout`` policy); None takes the server's default.
        A session that does not exist yet is registered first.
        """
        client_id = fields.get("client_id") or DEFAULT_CLIENT
        body: dict[str, Any] = {
            "session_id": fields.get("session_id") or DEFAULT_SESSION,
            "client_id": client_id,
            "message": message,
            "options": [o if isinstance(o, str) else dict(o) for o in fields.get("options", ())],
            "metadata": dict(fields.get("metadata") or {}),
        }
        action = fields.get("action")
        if action is not None:
            body["action"] = {"tool": action["tool"], "args": dict(action.get("args") or {})}
        if fields.get("editable"):
            body["editable"] = True
        schema = fields.get("args_schema")
        if schema is not None:
            body["args_schema"] = dict(schema)
        for name, value in (
            ("timeout_seconds", fields.get("timeout")),
            ("callback_url", fields.get("callback_url")),
            ("idempotency_key", fields.get("idempotency_key")),
        ):
            if value is not None:
                body[name] = value
        try:
            created = await self.create_request(body)
        except LoopgateClientError as exc:
            if exc.code != "session_not_found":
                raise
            await self.register_session(body["session_id"], client_id)
            created = await self.create_request(body)
        request_id: str = created["request_id"]
        return request_id

    async def wait(
        self,
        request_id: str,
        timeout: float | None = None,  # noqa: ASYNC109 - the same name in the sync client
    ) -> Decision:
        """The decision, once there is one; raises ``WaitTimedOut`` after ``timeout`` seconds.

        ``timeout=None`` waits until the request is final (its own expiry ends it).
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        try:
            decision = await asyncio.wait_for(self._wait_on_stream(request_id), timeout)
        except TimeoutError:
            decision = Decision.from_json(await self.get_request(request_id))
        except (aiohttp.ClientError, _StreamUnavailable):
            decision = await self._wait_by_polling(request_id, deadline)
        if not decision.final:
            raise WaitTimedOut(decision, timeout or 0)
        return decision

    async def _wait_on_stream(self, request_id: str) -> Decision:
        """Listen to the request's SSE stream; on each event, see whether it is final."""
        url = self.base_url + _path("v1", "requests", request_id, "events")
        no_total = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self._http().get(
            url, headers={"Accept": "text/event-stream"}, timeout=no_total
        ) as response:
            if response.status != 200 or not response.content_type.startswith("text/event-stream"):
                # A 404 or 401 is raised as itself by the plain GET below.
                await self.get_request(request_id)
                raise _StreamUnavailable(response.status)
            async for line in response.content:
                if line.startswith(b"event:"):
                    decision = Decision.from_json(await self.get_request(request_id))
                    if decision.final:
                        return decision
        raise _StreamUnavailable(0)  # the server ended the stream (e.g. shutting down)

    async def _wait_by_polling(self, request_id: str, deadline: float | None) -> Decision:
        loop = asyncio.get_running_loop()
        while True:
            remaining = LONG_POLL_SECONDS if deadline is None else deadline - loop.time()
            wait = max(0.0, min(remaining, LONG_POLL_SECONDS))
            decision = Decision.from_json(await self.get_request(request_id, wait_seconds=wait))
            if decision.final or (deadline is not None and loop.time() >= deadline):
                return decision

    async def cancel(self, request_id: str, reason: str | None = None) -> Decision:
        return Decision.from_json(await self.cancel_request(request_id, reason))

    async def ask(self, message: str, **fields: Unpack[AskFields]) -> Decision:
        """Ask a human and wait for the decision (an expiry after ``timeout`` s is one too)."""
        request_id = await self.submit(message, **fields)
        timeout = fields.get("timeout")
        return await self.wait(
            request_id, None if timeout is None else timeout + EXPIRY_GRACE_SECONDS
        )


class _StreamUnavailable(Exception):
    """The SSE stream could not be had or ended early: fall back to long-polls."""
