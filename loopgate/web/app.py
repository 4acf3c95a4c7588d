"""``create_app(config)``: the one aiohttp application, composed per surface.

Middlewares, outermost first: request id and access log (every response
carries ``X-Request-ID``, every log line the id), the error renderer, then the
body-size limit, so even a 404 for an unknown route or a 413 comes out in the
JSON error shape with the request id on it.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from loopgate.config import Config
from loopgate.errors import PayloadTooLarge
from loopgate.hub import Hub
from loopgate.reactors.expirer import Expirer
from loopgate.service import Service
from loopgate.store import open_store
from loopgate.store.base import EventStore
from loopgate.web import api, health, hitl
from loopgate.web.errors import error_middleware
from loopgate.web.keys import CONFIG, EXPIRER, HUB, REQUEST_ID, SERVICE, STORE

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's own id is reused only if it is short and plain, so it is safe to log and echo.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if _CLIENT_REQUEST_ID.match(sent) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await handler(request)
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        log.info(
            "http",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
    return response


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # aiohttp enforces client_max_size only when a handler reads the body; a
    # declared length over the limit is refused at once, whatever the route.
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"request body of {request.content_length} bytes is over the {limit}-byte limit"
        )
    return await handler(request)


def create_app(config: Config, *, store: EventStore | None = None) -> web.Application:
    """Build the application. Without ``store``, it opens one from ``config`` on start-up."""
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, body_limit_middleware],
        client_max_size=config.requests.max_body_bytes,
    )
    app[CONFIG] = config
    if store is not None:
        app[STORE] = store
    else:
        app.cleanup_ctx.append(_store_context)
    app.cleanup_ctx.append(_runtime_context)
    app.add_routes(health.routes)
    app.add_routes(hitl.routes)
    app.add_routes(api.routes)
    return app


async def _store_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    app[STORE] = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    yield
    await app[STORE].close()


async def _runtime_context(app: web.Application) -> AsyncIterator[None]:
    """The hub, the command handlers and the expirer, over the app's store."""
    config, store = app[CONFIG], app[STORE]
    hub = Hub(store)
    await hub.start()
    service = Service(store, hub, default_timeout_seconds=config.requests.default_timeout_seconds)
    expirer = Expirer(service, hub)
    await expirer.start()
    app[HUB], app[SERVICE], app[EXPIRER] = hub, service, expirer
    yield
    await expirer.stop()
    await hub.stop()
