"""Liveness and readiness: ``/health`` (the reference's shape), ``/healthz``, ``/readyz``."""

from __future__ import annotations

import msgspec
from aiohttp import web

from loopgate import __version__
from loopgate.errors import StoreUnavailable
from loopgate.web.describe import describe
from loopgate.web.keys import STORE
from loopgate.web.responses import json_response

routes = web.RouteTableDef()


class Health(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    service: str
    version: str


class Status(msgspec.Struct, frozen=True, kw_only=True):
    status: str


class Ready(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    store: str


@routes.get("/health")
@describe("The reference's health check", replies={200: Health})
async def health(request: web.Request) -> web.Response:
    """The Go reference's health check, field for field."""
    return json_response(Health(status="healthy", service="loopgate", version=__version__))


@routes.get("/healthz")
@describe("Liveness: the process serves HTTP", replies={200: Status})
async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process serves HTTP. Never touches the database."""
    return json_response(Status(status="ok"))


@routes.get("/readyz")
@describe("Readiness: the event store answers", replies={200: Ready}, errors=(503,))
async def readyz(request: web.Request) -> web.Response:
    """Readiness: the event store answers; 503 in the error shape otherwise."""
    store = request.app[STORE]
    try:
        await store.ping()
    except StoreUnavailable:
        raise
    except Exception as exc:
        raise StoreUnavailable(f"the event store does not answer: {exc}") from exc
    return json_response(Ready(status="ready", store=store.backend))
