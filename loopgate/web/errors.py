"""One error shape for every 4xx/5xx: ``{"error": {"code", "message"}}``.

``error_middleware`` renders Loopgate's own errors (which carry their status
and code), aiohttp's HTTP exceptions (unknown routes, wrong methods, bodies
over the limit) and anything unexpected (a 500 that never leaks internals).

A 401 says how to authenticate (``WWW-Authenticate: Bearer``, as RFC 9110
requires of every 401); a 429 says when to come back (``Retry-After``, from
``TooManyRequests.retry_after``).
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec
import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from loopgate.errors import LoopgateError, TooManyRequests
from loopgate.web.responses import json_response

log = structlog.get_logger(__name__)

WWW_AUTHENTICATE = 'Bearer realm="loopgate"'

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}


class ErrorDetail(msgspec.Struct, frozen=True, kw_only=True):
    """``code`` is stable, for programs; ``message`` is for people."""

    code: str
    message: str


class Error(msgspec.Struct, frozen=True, kw_only=True):
    """Every 4xx and 5xx answer."""

    error: ErrorDetail


def error_response(status: int, code: str, message: str) -> web.Response:
    return json_response(Error(error=ErrorDetail(code=code, message=message)), status=status)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    if status == 404:
        message = f"no route for {request.method} {request.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.path}"
    elif status == 413:
        message = f"request body too large: the limit is {request.client_max_size} bytes"
    else:
        message = exc.text if exc.text and exc.text != f"{status}: {exc.reason}" else exc.reason
    response = error_response(status, _CODES.get(status, _code_for(status)), message)
    for header in ("Allow", "Retry-After", "WWW-Authenticate"):
        if header in exc.headers:
            response.headers[header] = exc.headers[header]
    return response


def _code_for(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except LoopgateError as exc:
        if exc.status >= 500:
            log.error("request failed", code=exc.code, error=exc.message)
        response = error_response(exc.status, exc.code, exc.message)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = WWW_AUTHENTICATE
        if isinstance(exc, TooManyRequests):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except Exception:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal server error; see the server log")
