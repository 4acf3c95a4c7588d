"""``GET /openapi.json``: the API as an OpenAPI 3.1 document; ``GET /docs``: the same as a page.

The document is built from the app's router, not from a list: every route
under ``/hitl``, ``/sessions``, ``/api`` and ``/v1`` (and the health checks)
contributes the :class:`~loopgate.web.describe.Operation` its handler was
described with, and one without a description makes :func:`undescribed`
name it (a test fails on it). Schemas come from the msgspec structs the
handlers decode and encode, through ``msgspec.json.schema_components``, so
the document cannot drift from the wire.

What the middlewares answer on every route is added here, once: 400 for a
NUL in the path or the query, 401 for a missing or bad credential (not on
public routes), 403 for a foreign ``Origin`` and 421 for a foreign ``Host``
(``web/guard.py``), and 413 and 415 where a route takes a body. Security
follows ``web/auth.py``'s ``policy_for``; the anonymous caller is listed
only when this server does not require API keys.

``/docs`` is rendered on the server from the same document with the app's
Jinja environment: no script, no stylesheet or font from anywhere else.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import aiohttp_jinja2
import msgspec
from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from markupsafe import Markup, escape

from loopgate import __version__
from loopgate.config import api_keys_required
from loopgate.web.auth import Policy, policy_for
from loopgate.web.describe import Media, Operation, description_of
from loopgate.web.errors import Error
from loopgate.web.keys import CONFIG
from loopgate.web.responses import json_response

routes = web.RouteTableDef()

DESCRIBED_PREFIXES = ("/hitl/", "/sessions/", "/api/", "/v1/", "/mcp/")
"""Every route under these must be described."""
HEALTH_PATHS = ("/health", "/healthz", "/readyz")
OPENAPI_PATH = "/openapi.json"
DOCS_PATH = "/docs"
REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"\{(\w+)\}")
_TAGS = {"hitl": "hitl", "sessions": "hitl", "v1": "v1", "api": "accounts"}
_TAG_ORDER = [*dict.fromkeys(_TAGS.values()), "health"]

SECURITY_SCHEMES = {
    "apiKeyBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "lk_pub_…",
        "description": "An API key: Authorization: Bearer lk_pub_…",
    },
    "apiKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key in its own header.",
    },
    "loginToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The login token from POST /api/auth/login.",
    },
}
_HEADERS = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Bearer"}},
    429: {
        "Retry-After": {
            "schema": {"type": "integer", "minimum": 0},
            "description": "Seconds to wait before trying again.",
        }
    },
}


def api_routes(app: web.Application) -> Iterator[tuple[str, str, AbstractRoute]]:
    """(path, method, route) of every route the document covers; HEAD twins left out."""
    for route in app.router.routes():
        resource = route.resource
        if resource is None or route.method == "HEAD":
            continue
        path = resource.canonical
        if path.startswith(DESCRIBED_PREFIXES) or path in HEALTH_PATHS:
            yield path, route.method.lower(), route


def undescribed(app: web.Application) -> list[str]:
    """``METHOD /path`` of each covered route whose handler has no description."""
    return [
        f"{method.upper()} {path}"
        for path, method, route in api_routes(app)
        if description_of(route.handler) is None
    ]


def _operation_of(route: AbstractRoute) -> Operation:
    operation = description_of(route.handler)
    if operation is None:
        raise LookupError(f"{route.method} {route.resource}: no @describe on its handler")
    return operation


def build_document(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``app``'s API routes."""
    described = [(path, method, _operation_of(route)) for path, method, route in api_routes(app)]
    shapes: list[Any] = [Error]
    for _, _, operation in described:
        if operation.body is not None:
            shapes.append(operation.body)
        shapes += [r for r in operation.replies.values() if not isinstance(r, Media)]
    unique = list(dict.fromkeys(shapes))
    refs, components = msgspec.json.schema_components(unique, ref_template=REF)
    # As JSON sees them: a tuple default (``options: ... = ()``) is an array.
    components = msgspec.json.decode(msgspec.json.encode(components))
    schema_of = dict(zip(unique, refs, strict=True))
    open_mode = not api_keys_required(app[CONFIG])
    paths: dict[str, dict[str, Any]] = {}
    for path, method, operation in described:
        paths.setdefault(path, {})[method] = _operation(
            path, method, operation, schema_of, open_mode
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Loopgate",
            "version": __version__,
            "description": "Agents ask, humans answer. The Go reference's /hitl routes, "
            "Loopgate's own /v1 API and the accounts under /api.",
        },
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": SECURITY_SCHEMES},
    }


def _operation(
    path: str, method: str, operation: Operation, schema_of: dict[Any, Any], open_mode: bool
) -> dict[str, Any]:
    policy = policy_for(path)
    parameters = [
        {
            "name": name,
            "in": "path",
            "description": "From the path.",
            "required": True,
            "schema": {"type": "string"},
        }
        for name in _PATH_PARAM.findall(path)
    ]
    parameters += [
        {
            "name": p.name,
            "in": p.location,
            "description": p.description,
            "required": p.required,
            "schema": p.schema,
        }
        for p in operation.params
    ]
    responses: dict[str, Any] = {
        str(status): _reply(status, shape, schema_of) for status, shape in operation.replies.items()
    }
    for status in _errors(path, operation, policy):
        responses[str(status)] = _error_reply(status)
    described: dict[str, Any] = {
        "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
        "summary": operation.summary,
        "tags": [_TAGS.get(path.split("/")[1], "health")],
        "parameters": parameters,
        "responses": dict(sorted(responses.items())),
        "security": _security(policy, open_mode),
    }
    if operation.body is not None:
        described["requestBody"] = {
            "required": operation.body_required,
            "content": {"application/json": {"schema": schema_of[operation.body]}},
        }
    return described


def _errors(path: str, operation: Operation, policy: Policy) -> list[int]:
    statuses = {400, 403, *operation.errors}
    if policy is not Policy.PUBLIC:
        statuses.add(401)
    if path not in HEALTH_PATHS:
        statuses.add(421)
    if operation.body is not None:
        statuses |= {413, 415}
    return sorted(statuses)


def _security(policy: Policy, open_mode: bool) -> list[dict[str, list[str]]]:
    match policy:
        case Policy.PUBLIC | Policy.CONSOLE:
            return []
        case Policy.USER:
            return [{"loginToken": []}]
        case Policy.AGENT:
            keyed: list[dict[str, list[str]]] = [
                {"apiKeyBearer": []},
                {"apiKeyHeader": []},
                {"loginToken": []},
            ]
            return [*keyed, {}] if open_mode else keyed


def _reply(status: int, shape: Any, schema_of: dict[Any, Any]) -> dict[str, Any]:
    if isinstance(shape, Media):
        content = {kind: {"schema": {"type": "string"}} for kind in shape.types}
        return {"description": shape.description, "content": content}
    return {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": schema_of[shape]}},
    }


def _error_reply(status: int) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "description": HTTPStatus(status).phrase,
        "content": {"application/json": {"schema": {"$ref": REF.format(name="Error")}}},
    }
    if status in _HEADERS:
        reply["headers"] = _HEADERS[status]
    return reply


@routes.get(OPENAPI_PATH)
async def openapi(request: web.Request) -> web.Response:
    return json_response(build_document(request.app))


_CREDENTIALS = {
    "apiKeyBearer": "API key (Bearer)",
    "apiKeyHeader": "API key (X-API-Key)",
    "loginToken": "login token",
}


def _credentials(security: list[dict[str, list[str]]]) -> str:
    if not security:
        return "none (public)"
    return ", ".join(
        " + ".join(_CREDENTIALS[name] for name in option) or "anonymous" for option in security
    )


def type_of(schema: dict[str, Any]) -> Markup:
    """A JSON Schema in a few words, with links to the named schemas."""
    if "$ref" in schema:
        name = escape(schema["$ref"].rsplit("/", 1)[1])
        return Markup('<a href="#schema-{0}">{0}</a>').format(name)
    if "anyOf" in schema:
        return Markup(" or ").join(type_of(option) for option in schema["anyOf"])
    if "enum" in schema:
        return Markup("one of {}").format(", ".join(repr(value) for value in schema["enum"]))
    kind = schema.get("type")
    if kind == "array":
        return Markup("array of {}").format(type_of(schema.get("items", {})))
    if kind is None:
        return Markup("any")
    return escape(f"{kind} ({schema['format']})" if "format" in schema else kind)


def _operations_by_tag(document: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            groups.setdefault(operation["tags"][0], []).append(
                {
                    "id": operation["operationId"],
                    "method": method,
                    "path": path,
                    "summary": operation["summary"],
                    "security": _credentials(operation["security"]),
                    "parameters": operation["parameters"],
                    "body": operation.get("requestBody"),
                    "responses": operation["responses"],
                }
            )
    return sorted(groups.items(), key=lambda group: _TAG_ORDER.index(group[0]))


@routes.get(DOCS_PATH)
async def docs(request: web.Request) -> web.Response:
    document = build_document(request.app)
    context = {
        "doc": document,
        "groups": _operations_by_tag(document),
        "schemas": document["components"]["schemas"],
        "type_of": type_of,
    }
    response = aiohttp_jinja2.render_template("docs/api.html", request, context)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
    )
    return response
