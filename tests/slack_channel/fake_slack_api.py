"""A local fake of the Slack Web API (and of Socket Mode's WebSocket), for tests.

The real, unmodified ``slack_sdk`` ``AsyncWebClient`` talks to it over HTTP
(``base_url`` = :attr:`FakeSlackAPI.base_url`), so tests exercise the SDK's
own request encoding and error mapping (``SlackApiError`` with the HTTP
status and ``Retry-After``). It records every call, holds the messages posted
(by conversation and ``ts``), answers ``chat.postMessage`` with a DM id
(``D…``) for a user id and a channel id (``C…``) for ``#name``, and can be
told to answer the next calls with 429, or that a channel does not exist.

Socket Mode: ``apps.connections.open`` answers the URL of the fake's own
WebSocket; :meth:`FakeSlackAPI.send_envelope` sends an envelope over it and
waits for the app's acknowledgement.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "xoxb-test-bot-token"
APP_TOKEN = "xapp-test-app-token"
TEAM_ID = "T0LOOPGATE"
BOT_USER_ID = "U0LOOPBOT"


@dataclass
class Call:
    """One Web API call the fake answered; ``status`` is the HTTP status it answered with."""

    method: str
    params: dict[str, Any]
    token: str | None
    status: int = 200
    error: str | None = None
    at: float = field(default_factory=time.monotonic)

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


@dataclass
class Posted:
    """A message as the fake holds it now, in its conversation."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None = None

    def buttons(self) -> list[dict[str, Any]]:
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block["elements"]
        ]

    def all_text(self) -> str:
        """Every mrkdwn text of the message, joined: what a test looks for a line in."""
        found = [self.text]
        for block in self.blocks:
            if "text" in block:
                found.append(block["text"]["text"])
            found += [f["text"] for f in block.get("fields", [])]
            found += [e["text"] for e in block.get("elements", []) if e.get("type") == "mrkdwn"]
        return "\n".join(found)


class FakeSlackAPI:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[tuple[str, str], Posted] = {}
        self.unknown_channels: set[str] = set()
        """Addresses ``chat.postMessage`` answers ``channel_not_found`` for."""
        self.acks: list[dict[str, Any]] = []
        """What the app sent back over the Socket Mode WebSocket (envelope acknowledgements)."""
        self._failing: list[int] = []
        self._ts = itertools.count(1)
        self._changed = asyncio.Condition()
        self._sockets: list[web.WebSocketResponse] = []
        self.base_url = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/socket", self._socket)
        return app

    # --- what tests ask of the fake -------------------------------------------------------

    def rate_limit(self, times: int) -> None:
        """Answer the next ``times`` Web API calls with 429 and ``Retry-After: 1``."""
        self.fail_next(times, status=429)

    def fail_next(self, times: int, status: int) -> None:
        """Answer the next ``times`` Web API calls with ``status`` (429 with ``Retry-After: 1``)."""
        self._failing += [status] * times

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.method == method]

    def succeeded(self, method: str) -> list[Call]:
        return [call for call in self.calls_to(method) if call.ok]

    async def wait_for(self, method: str, count: int = 1, within: float = 10.0) -> list[Call]:
        """The first ``count`` successful calls to ``method``, waiting for them."""
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(lambda: len(self.succeeded(method)) >= count)
        return self.succeeded(method)[:count]

    async def wait_until(self, predicate: Any, within: float = 10.0) -> None:
        async with asyncio.timeout(within), self._changed:
            await self._changed.wait_for(predicate)

    def dm_of(self, user_id: str) -> str:
        return "D" + user_id.removeprefix("U")

    def channel_id(self, name: str) -> str:
        return "C" + name.removeprefix("#").upper().replace("-", "")

    def message(self, channel: str, ts: str) -> Posted:
        return copy.deepcopy(self.messages[(channel, ts)])

    async def send_envelope(self, payload: dict[str, Any], kind: str = "interactive") -> str:
        """Send a Socket Mode envelope to the connected app; its id, once acknowledged."""
        await self.wait_until(lambda: bool(self._sockets))
        envelope_id = str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "interactive",
        }
        await self._sockets[-1].send_str(json.dumps(envelope))
        await self.wait_until(lambda: any(a.get("envelope_id") == envelope_id for a in self.acks))
        return envelope_id

    # --- the Web API ---------------------------------------------------------------------

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            params |= await request.json()
        elif request.can_read_body:
            params |= dict(await request.post())
        auth = request.headers.get("Authorization", "")
        call = Call(method, params, auth.removeprefix("Bearer ") or None)
        self.calls.append(call)
        try:
            if self._failing:
                status = self._failing.pop(0)
                call.status = status
                call.error = "ratelimited" if status == 429 else "internal_error"
                headers = {"Retry-After": "1"} if status == 429 else {}
                body = {"ok": False, "error": call.error}
                return web.json_response(body, status=status, headers=headers)
            try:
                result = self._answer(method, params, call.token, request)
            except _SlackError as exc:
                call.error = exc.code
                return web.json_response({"ok": False, "error": exc.code})
            return web.json_response({"ok": True, **result})
        finally:
            await self._notify()

    def _answer(
        self, method: str, params: dict[str, Any], token: str | None, request: web.Request
    ) -> dict[str, Any]:
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                raise _SlackError("invalid_auth")
            return {
                "url": str(request.url.with_path("/socket").with_query(None)).replace(
                    "http", "ws", 1
                )
            }
        if token != BOT_TOKEN:
            raise _SlackError("invalid_auth")
        match method:
            case "auth.test":
                return {"team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0LOOPBOT"}
            case "chat.postMessage":
                return self._post(params)
            case "chat.update":
                return self._update(params)
            case "chat.postEphemeral":
                return {"message_ts": f"{time.time():.6f}"}
        raise _SlackError("unknown_method")

    def _conversation(self, address: str) -> str:
        if address in self.unknown_channels:
            raise _SlackError("channel_not_found")
        if address.startswith("#"):
            return self.channel_id(address)
        if address.startswith("U"):
            return self.dm_of(address)
        if address.startswith(("C", "D")):
            return address
        raise _SlackError("channel_not_found")

    def _post(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self._conversation(str(params["channel"]))
        ts = f"1700000000.{next(self._ts):06d}"
        posted = Posted(
            channel,
            ts,
            str(params.get("text", "")),
            _blocks(params.get("blocks")),
            params.get("thread_ts"),
        )
        self.messages[(channel, ts)] = posted
        return {"channel": channel, "ts": ts, "message": {"text": posted.text, "ts": ts}}

    def _update(self, params: dict[str, Any]) -> dict[str, Any]:
        key = (str(params["channel"]), str(params["ts"]))
        if key not in self.messages:
            raise _SlackError("message_not_found")
        posted = self.messages[key]
        posted.text = str(params.get("text", ""))
        posted.blocks = _blocks(params.get("blocks"))
        return {"channel": key[0], "ts": key[1], "text": posted.text}

    # --- Socket Mode ---------------------------------------------------------------------

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1}))
        await self._notify()
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    self.acks.append(json.loads(message.data))
                    await self._notify()
        finally:
            self._sockets.remove(socket)
        return socket

    async def close_sockets(self) -> None:
        for socket in list(self._sockets):
            await socket.close()


class _SlackError(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _blocks(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):  # form-encoded: the SDK sends blocks as JSON text
        loaded: list[dict[str, Any]] = json.loads(value)
        return loaded
    return list(value)


@contextlib.asynccontextmanager
async def running_fake() -> AsyncIterator[FakeSlackAPI]:
    """The fake, listening on a free local port until the block ends."""
    fake = FakeSlackAPI()
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://127.0.0.1:{port}/api/"
    try:
        yield fake
    finally:
        await fake.close_sockets()
        await runner.cleanup()
