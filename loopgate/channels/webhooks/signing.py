"""Outgoing webhooks: the payload and its signature (the secret is in ``secrets.py``).

A decided request with a ``callback_url`` gets one POST (retried until it
lands; see ``sender.py``) whose body is :func:`payload` and
whose headers are:

* ``Loopgate-Delivery-Id``: :func:`delivery_id`, the same on every retry, so a
  receiver can drop repeats;
* ``Loopgate-Signature: t=<unix seconds>,v1=<hex>``: HMAC-SHA256 of
  ``"<t>.<body>"`` keyed by the tenant's webhook secret. The timestamp is
  signed with the body so a captured delivery cannot be replayed later than
  the receiver's tolerance (:func:`verify_signature`, five minutes).

Callback URLs are checked when a request is created and again before each
POST (``loopgate/commands/callback_urls.py``), so a caller cannot make the
server probe the network it runs in.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from loopgate.views import RequestView, decided_by, outcome_of

DELIVERY_HEADER = "Loopgate-Delivery-Id"
SIGNATURE_HEADER = "Loopgate-Signature"
TOLERANCE_SECONDS = 300
# Delivery ids are uuid5s in this namespace: derived from the request id alone,
# so every attempt, in any process, before and after a restart, carries the same.
_DELIVERY_NAMESPACE = uuid.UUID("6f1c2a9e-3d4b-5c6d-8e7f-0a1b2c3d4e5f")


class InvalidSignature(ValueError):
    """A webhook's signature is missing, malformed, stale or does not match its body."""


def delivery_id(request_id: str) -> str:
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, request_id))


def payload(view: RequestView) -> dict[str, Any]:
    """The JSON body POSTed to ``callback_url`` once ``view`` is decided."""
    return {
        "type": f"request.{view.status}",
        "request_id": view.request_id,
        "session_id": view.session_id,
        "status": view.status,
        "approved": view.approved,
        "response": view.response,
        "outcome": outcome_of(view),
        "decided_by": msgspec.to_builtins(decided_by(view)),
        "decided_at": view.decided_at.isoformat() if view.decided_at else None,
    }


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """The ``Loopgate-Signature`` header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance_seconds: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise :class:`InvalidSignature` unless ``headers`` sign ``body`` with ``secret``."""
    header = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
        given = fields["v1"]
    except (KeyError, ValueError):
        raise InvalidSignature(f"no valid {SIGNATURE_HEADER} header") from None
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        raise InvalidSignature("signature timestamp is outside the tolerance")
    expected = sign(body, secret, timestamp).rpartition("v1=")[2]
    if not hmac.compare_digest(expected, given):
        raise InvalidSignature("signature does not match the body")
