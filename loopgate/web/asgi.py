"""Serve an ASGI application (the MCP SDK's Starlette app) from an aiohttp route.

Our own bridge rather than ``aiohttp-asgi``, which gets two things wrong for the SDK:

* its ``receive()`` returns empty bodies forever once the body is read, so the SDK's
  disconnect watcher (``while (await receive())["type"] != "http.disconnect"``) spins and
  freezes the event loop. Here ``receive()`` streams the body, then *blocks* until the
  client goes away or the response is finished, and only then says ``http.disconnect``;
* it passes a ``root_path`` that Starlette's routing strips (``get_route_path``), giving
  404s. Here the app sees the full request path and ``root_path=""``, so a Starlette route
  matches the URL the client used: mount the SDK with ``streamable_http_path`` equal to the
  aiohttp route (``/mcp`` for both).

The app runs in a task of its own per request: ``close()`` can cancel the in-flight ones on
shutdown (an SSE stream never ends by itself), and a cancelled aiohttp handler (a client
disconnect under ``handler_cancellation=True``) turns into ``http.disconnect`` for the app
instead of a ``CancelledError`` at an arbitrary point.

ASGI lifespan is not run through the bridge: enter the app's lifespan context (the SDK's
``session_manager.run()``) with ``BackgroundContext``, whose task owns its anyio cancel scope.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
from aiohttp import web

from loopgate.errors import LoopgateError

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CHUNK_SIZE = 64 * 1024
DISCONNECT = {"type": "http.disconnect"}


class ShuttingDown(LoopgateError):
    status, code = 503, "shutting_down"


class _Exchange:
    """One request's ``receive``/``send`` pair and the response they build."""

    def __init__(self, request: web.Request, poll_interval: float) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None
        self.finished = False
        self._body_done = False
        self._ended = asyncio.Event()  # client gone or response finished
        self._poll_interval = poll_interval

    def end(self) -> None:
        self._ended.set()

    def _client_gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def receive(self) -> Message:
        if not self._body_done and not self._ended.is_set():
            try:
                chunk = await self.request.content.read(CHUNK_SIZE)
            except (OSError, asyncio.CancelledError):
                # aiohttp fails the payload when the connection is lost (ConnectionResetError)
                # or on server shutdown (a CancelledError that is not ours to propagate).
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                self.end()
                return dict(DISCONNECT)
            more = bool(chunk) and not self.request.content.at_eof()
            self._body_done = not more
            return {"type": "http.request", "body": chunk, "more_body": more}
        # aiohttp has no "connection lost" hook for a handler: wake on our own events, and
        # look at the transport now and then to notice a client that just went away.
        while not self._ended.is_set() and not self._client_gone():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await self._ended.wait()
        self.end()
        return dict(DISCONNECT)

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if self._ended.is_set():
            return  # ASGI 2.3: sending after a disconnect is a no-op
        if kind == "http.response.start":
            if self.response is not None:
                raise RuntimeError("http.response.start sent twice")
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            self.response = response
            await self._io(response.prepare(self.request))
        elif kind == "http.response.body":
            if self.response is None:
                raise RuntimeError("http.response.body sent before http.response.start")
            body = message.get("body", b"")
            if body:  # written straight to the transport: SSE events are not held back
                await self._io(self.response.write(body))
            if not message.get("more_body", False):
                await self._io(self.response.write_eof())
                self.finished = True
                self.end()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _io(self, operation: Awaitable[Any]) -> None:
        try:
            await operation
        except OSError:  # the client went away mid-response
            self.end()


class ASGIBridge:
    """An aiohttp handler that serves ``app``; add it for ``/mcp`` and ``/mcp/{tail:.*}``."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        state: Callable[[web.Request], dict[str, Any]] | None = None,
        poll_interval: float = 0.5,
        grace: float = 1.0,
    ) -> None:
        """``state(request)`` becomes the scope's ``state`` (Starlette's ``request.state``):
        how the app learns what aiohttp's middlewares resolved, such as the caller."""
        self._app = app
        self._state = state
        self._poll_interval = poll_interval
        self._grace = grace  # how long a cancelled handler lets the app see the disconnect
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self._closed:
            raise ShuttingDown("the server is shutting down")
        exchange = _Exchange(request, self._poll_interval)
        scope = _scope(request)
        if self._state is not None:
            scope["state"] = self._state(request)
        task = asyncio.create_task(self._run(scope, exchange))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():  # aiohttp cancelled us: the client left, or a forced shutdown
                exchange.end()
                await asyncio.wait({task}, timeout=self._grace)
                task.cancel()
                await asyncio.wait({task})
                raise
            if exchange.response is None:  # close() cancelled the app
                raise ShuttingDown("the server is shutting down") from None
        except Exception as exc:
            if exchange.response is None:
                log.exception("ASGI app failed", path=request.path)
                raise LoopgateError("the endpoint failed; see the server log") from exc
            log.exception("ASGI app failed mid-response", path=request.path)
        if exchange.response is None:
            log.error("ASGI app returned without a response", path=request.path)
            raise LoopgateError("the endpoint sent no response; see the server log")
        if not exchange.finished:
            if task.cancelled() or task.exception() is not None:
                # Drop the connection so the client sees a truncated response, not a clean end.
                if request.transport is not None:
                    request.transport.close()
            else:
                with contextlib.suppress(OSError):
                    await exchange.response.write_eof()
        return exchange.response

    async def _run(self, scope: Scope, exchange: _Exchange) -> None:
        await self._app(scope, exchange.receive, exchange.send)

    async def close(self) -> None:
        """Cancel the in-flight app calls (open SSE streams) so shutdown need not wait them out."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _scope(request: web.Request) -> Scope:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    sock = transport.get_extra_info("sockname") if transport is not None else None
    url = request.rel_url
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": url.path,  # the full path, and no root_path: see the module docstring
        "raw_path": url.raw_path.encode("latin-1"),
        "query_string": url.raw_query_string.encode("latin-1"),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "client": (peer[0], peer[1]) if isinstance(peer, tuple) else None,
        "server": (sock[0], sock[1]) if isinstance(sock, tuple) else None,
        "extensions": {},
    }


class BackgroundContext:
    """Hold an async context manager open in a task of its own.

    anyio cancel scopes (the SDK's ``session_manager.run()`` task group) must be exited by
    the task that entered them; aiohttp's startup and cleanup hooks may run in different
    tasks, so a dedicated task enters the context and later exits it.
    """

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self, cm: AbstractAsyncContextManager[Any]) -> None:
        """Return once ``cm`` is entered; re-raise what entering it raised."""
        if self._task is not None:
            raise RuntimeError("BackgroundContext already started")
        entered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._hold(cm, entered))
        try:
            await entered
        except BaseException:
            if not self._task.done():
                self._task.cancel()
            await asyncio.wait({self._task})
            raise

    async def _hold(
        self, cm: AbstractAsyncContextManager[Any], entered: asyncio.Future[None]
    ) -> None:
        try:
            await cm.__aenter__()
        except BaseException as exc:
            if not entered.done():
                entered.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        entered.set_result(None)
        try:
            await self._stop.wait()
        except BaseException as exc:
            if not await cm.__aexit__(type(exc), exc, exc.__traceback__):
                raise
        else:
            await cm.__aexit__(None, None, None)

    async def stop(self) -> None:
        """Exit the context (in its own task) and wait for it; re-raise what exiting raised."""
        if self._task is None:
            return
        self._stop.set()
        task, self._task = self._task, None
        await task
