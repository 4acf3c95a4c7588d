"""Liveness and readiness: ``/health`` (the reference's shape), ``/healthz``, ``/readyz``."""

from __future__ import annotations

from aiohttp import web

from loopgate import __version__
from loopgate.errors import StoreUnavailable
from loopgate.web.keys import STORE
from loopgate.web.responses import json_response

routes = web.RouteTableDef()


@routes.get("/health")
async def health(request: web.Request) -> web.Response:
    """The Go reference's health check, field for field."""
    return json_response({"status": "healthy", "service": "loopgate", "version": __version__})


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP. Never touches the database."""
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Readiness: the event store answers; 503 in the error shape otherwise."""
    store = request.app[STORE]
    try:
        await store.ping()
    except StoreUnavailable:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"the event store does not answer: {exc}") from exc
    return json_response({"status": "ready", "store": store.backend})
