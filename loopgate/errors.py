"""Loopgate's errors. Each class carries its HTTP status and a stable code.

One middleware (``loopgate.web.errors``) renders any of them as
``{"error": {"code": ..., "message": ...}}`` with ``status``::

    LoopgateError (500 internal_error)
    ├── BadRequest (400 bad_request)
    │   ├── InvalidJSON (400 invalid_json)
    │   └── ValidationFailed (400 validation_failed)
    ├── Unauthorized (401 unauthorized)
    ├── Forbidden (403 forbidden)
    │   └── OriginNotAllowed (403 origin_not_allowed)    a browser page of another site
    ├── NotFound (404 not_found)
    ├── Conflict (409 conflict)
    │   └── ConcurrencyError (409 concurrency_conflict)   stale expected version
    ├── PayloadTooLarge (413 payload_too_large)
    ├── UnsupportedMediaType (415 unsupported_media_type)  a body that is not JSON
    ├── MisdirectedRequest (421 host_not_allowed)        a Host not in server.allowed_hosts
    ├── DomainError (422 domain_rule)                    a decider refused a command
    │   ├── StateConflict (409 state_conflict)           the aggregate's state forbids it
    │   │   └── AlreadyDecided (409 already_decided)
    │   └── RequestClosed (410 request_closed)
    ├── TooManyRequests (429 too_many_requests)         carries ``retry_after`` seconds
    ├── StoreUnavailable (503 store_unavailable)
    └── CorruptEvent (500 corrupt_event)                 an undecodable stored event

Raise with a message for people; pass ``code=`` to name a finer case
(``NotFound("no such request", code="request_not_found")``).
"""

from __future__ import annotations


class LoopgateError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(LoopgateError):
    status, code = 400, "bad_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class ValidationFailed(BadRequest):
    code = "validation_failed"


class Unauthorized(LoopgateError):
    status, code = 401, "unauthorized"


class Forbidden(LoopgateError):
    status, code = 403, "forbidden"


class OriginNotAllowed(Forbidden):
    code = "origin_not_allowed"


class NotFound(LoopgateError):
    status, code = 404, "not_found"


class Conflict(LoopgateError):
    status, code = 409, "conflict"


class Gone(LoopgateError):
    """A single-use or short-lived thing (an invitation, a link code) that expired."""

    status, code = 410, "gone"


class ConcurrencyError(Conflict):
    """The stream moved on since the caller read it; re-read and retry."""

    code = "concurrency_conflict"

    def __init__(self, stream: str, expected: int | None, actual: int | None) -> None:
        if actual is None:  # a unique key of a query table was taken concurrently
            message = f"stream {stream!r} conflicts with a concurrent append"
        else:
            message = f"stream {stream!r} is at version {actual}, expected {expected}"
        super().__init__(message)
        self.stream, self.expected, self.actual = stream, expected, actual


class PayloadTooLarge(LoopgateError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(LoopgateError):
    status, code = 415, "unsupported_media_type"


class MisdirectedRequest(LoopgateError):
    """The ``Host`` header names a server this one is not (DNS rebinding, a wrong proxy)."""

    status, code = 421, "host_not_allowed"


class DomainError(LoopgateError):
    """A command is not allowed in the aggregate's current state."""

    status, code = 422, "domain_rule"


class StateConflict(DomainError):
    """The command is fine, but the aggregate is in a state that forbids it."""

    status, code = 409, "state_conflict"


class AlreadyDecided(StateConflict):
    code = "already_decided"


class RequestClosed(DomainError):
    """The request was cancelled or expired: answering it is no longer possible."""

    status, code = 410, "request_closed"


class TooManyRequests(LoopgateError):
    """Over a limit (e.g. failed logins); ``retry_after`` is the wait in whole seconds.

    The web layer sends it as the ``Retry-After`` header.
    """

    status, code = 429, "too_many_requests"

    def __init__(self, message: str, retry_after: int, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class StoreUnavailable(LoopgateError):
    status, code = 503, "store_unavailable"


class CorruptEvent(LoopgateError):
    """A stored event cannot be decoded; readers stop rather than skip it."""

    code = "corrupt_event"

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"event at position {position} cannot be decoded: {reason}")
        self.position = position
