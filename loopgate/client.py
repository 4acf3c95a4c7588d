"""A small async client for a running Loopgate server's ``/v1`` API.

Used by ``loopgate mcp`` (the stdio MCP server forwards every tool call to a
server over HTTP); usable from any asyncio program::

    async with LoopgateClient("http://127.0.0.1:8080", api_key="lk_pub_…") as gate:
        request = await gate.create_request({"session_id": "s1", "client_id": "bot",
                                             "message": "Deploy?"})
        decided = await gate.get_request(request["request_id"], wait_seconds=30)

Responses are the server's JSON objects as they are. An error response is
raised as :class:`LoopgateClientError` with the server's status, code and
message; a server that cannot be reached is a ``server_unreachable`` error.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from loopgate import __version__
from loopgate.errors import LoopgateError

# Long-polls hold a request open for their wait; the socket timeout must outlast it.
WAIT_MARGIN_SECONDS = 30.0


class LoopgateClientError(LoopgateError):
    """The server answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(part, safe="") for part in parts)


class LoopgateClient:
    def __init__(self, base_url: str, api_key: str | None = None) -> None:
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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        wait_seconds: float = 0,
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers)
        timeout = aiohttp.ClientTimeout(total=wait_seconds + WAIT_MARGIN_SECONDS)
        try:
            async with self._session.request(
                method, self.base_url + path, json=json, params=params, timeout=timeout
            ) as response:
                raw = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise LoopgateClientError(
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
            raise LoopgateClientError(
                response.status,
                error.get("code", "http_error"),
                message or f"HTTP {response.status}",
            )
        if body is None:
            raise LoopgateClientError(
                response.status, "invalid_response", f"{self.base_url} answered with no JSON"
            )
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
        self, request_id: str, *, option: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        body = {"option": option} if option is not None else {"text": text}
        result: dict[str, Any] = await self._call(
            "POST", _path("v1", "requests", request_id, "response"), json=body
        )
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
