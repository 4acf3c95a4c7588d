"""What a client gets back: a :class:`Decision`, or one of the typed errors below.

Errors, each with the server's ``status`` (0 when there was no answer) and
stable ``code``::

    LoopgateClientError
    ├── ServerUnreachable        no answer, or not JSON
    ├── AuthenticationFailed     401 / 403
    ├── RequestNotFound          404
    ├── RequestConflict          409 / 410 (already decided, idempotency clash)
    ├── RequestRefused           400 / 413 / 422 (the request itself is wrong)
    ├── WaitTimedOut             the wait ended before anyone decided
    └── ReceiptRefused           @require_approval could not redeem the approval's receipt
    NotApproved                  raised by @require_approval; carries the decision
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from loopgate.errors import LoopgateError

Status = Literal["pending", "delivered", "answered", "cancelled", "expired"]
FINAL: tuple[Status, ...] = ("answered", "cancelled", "expired")


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """A request as the server reports it, final or not (``pending`` after a wait ran out).

    ``approved`` is True only for an approving answer (or an expiry under
    ``on_timeout = "approve"``); ``response`` is the chosen option or the text.
    """

    request_id: str
    status: Status
    approved: bool = False
    response: str | None = None
    outcome: str | None = None
    decided_by: dict[str, Any] | None = None
    decided_at: str | None = None
    action: dict[str, Any] | None = None
    """The action asked about, ``{tool, args}``, if the request carried one."""
    decided_action: dict[str, Any] | None = None
    """The action approved: ``action``, or the approver's edit of it (``edited``)."""
    edited: bool = False
    receipt: str | None = None
    """The signed, single-use proof of the approval of ``decided_action`` (a compact JWS)."""

    @property
    def final(self) -> bool:
        return self.status in FINAL

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Decision:
        fields = {f: body.get(f) for f in cls.__struct_fields__}
        fields["approved"] = bool(body.get("approved"))
        return msgspec.convert(fields, cls)


class LoopgateClientError(LoopgateError):
    """The server answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, code=code)
        self.status = status


class ServerUnreachable(LoopgateClientError):
    pass


class AuthenticationFailed(LoopgateClientError):
    pass


class RequestNotFound(LoopgateClientError):
    pass


class RequestConflict(LoopgateClientError):
    pass


class RequestRefused(LoopgateClientError):
    pass


class WaitTimedOut(LoopgateClientError):
    """Nobody decided within the wait; ``decision`` is the request as it was then."""

    def __init__(self, decision: Decision, waited: float) -> None:
        super().__init__(
            0, "wait_timed_out", f"no decision on {decision.request_id} after {waited:g} s"
        )
        self.decision = decision


class ReceiptRefused(LoopgateClientError):
    """Approved, yet the receipt would not redeem (used, expired, another action) or was missing.

    The gated function did not run. ``code`` is the server's
    (``receipt_already_redeemed``, ``receipt_expired``, ``action_mismatch``...) or
    ``no_receipt``; ``decision`` is the approval.
    """

    def __init__(self, decision: Decision, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.decision = decision


class NotApproved(Exception):
    """A gated action was not approved: rejected, cancelled or expired. See ``decision``."""

    def __init__(self, decision: Decision) -> None:
        super().__init__(
            f"not approved: {decision.outcome or decision.status}"
            + (f" ({decision.response})" if decision.response else "")
        )
        self.decision = decision


_BY_STATUS: dict[int, type[LoopgateClientError]] = {
    0: ServerUnreachable,
    400: RequestRefused,
    401: AuthenticationFailed,
    403: AuthenticationFailed,
    404: RequestNotFound,
    409: RequestConflict,
    410: RequestConflict,
    413: RequestRefused,
    422: RequestRefused,
}


def error_for(status: int, code: str, message: str) -> LoopgateClientError:
    return _BY_STATUS.get(status, LoopgateClientError)(status, code, message)
