"""What an API route takes and answers, declared beside its handler for ``/openapi.json``.

A handler is described by decorating it, under its route::

    @routes.post("/hitl/request")
    @describe(
        "Ask a human",
        body=CreateRequestBody,
        replies={200: Created},
        errors=(404, 409, 422, 429),
    )
    async def create_request(request): ...

``replies`` maps each success status to the msgspec type the handler encodes
(or to a :class:`Media`, for streams and files); ``params`` are the query (and
header) parameters; ``errors`` lists the 4xx (or 503) the route itself raises. What
every route of a kind can answer is added by ``web/openapi.py``, which walks
the router: 400 for a NUL in the path or the query, 401 for a bad credential,
403 and 421 from the browser guard, and 413 and 415 for a route with a body.
Path parameters are read from the route.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """One query (or header) parameter; ``schema`` is a JSON Schema."""

    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    location: Literal["query", "header"] = "query"


@dataclass(frozen=True)
class Media:
    """A reply that is not one JSON value (an event stream, a file): described by its type."""

    types: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Operation:
    summary: str
    params: tuple[Param, ...] = ()
    body: type | None = None
    body_required: bool = True
    replies: dict[int, Any] = field(default_factory=dict)
    errors: tuple[int, ...] = ()


_DESCRIBED: dict[Callable[..., Any], Operation] = {}


def describe(
    summary: str,
    *,
    params: tuple[Param, ...] = (),
    body: type | None = None,
    body_required: bool = True,
    replies: dict[int, Any],
    errors: tuple[int, ...] = (),
) -> Callable[[F], F]:
    """Record the handler's description; the handler itself is returned unchanged."""
    operation = Operation(
        summary=summary,
        params=params,
        body=body,
        body_required=body_required,
        replies=replies,
        errors=errors,
    )

    def record(handler: F) -> F:
        _DESCRIBED[handler] = operation
        return handler

    return record


def description_of(handler: Callable[..., Any]) -> Operation | None:
    return _DESCRIBED.get(handler)


WAIT = Param(
    "wait",
    "Seconds to long-poll until the request is decided (capped by requests.max_wait_seconds); "
    "0 or absent answers at once.",
    {"type": "number", "minimum": 0},
)
