"""Check a receipt offline: its signature, its expiry and the action it is bound to.

No Loopgate server is needed: only the token, the action about to run and the
server's public keys (its JWKS, ``GET /.well-known/jwks.json``, which may be
saved to a file). Used by ``loopgate receipt verify`` and, through
``loopgate.client.verify_receipt``, by a tool that wants to check a receipt
before it even asks the server to redeem it. Verifying does not use a receipt
up: only ``POST /v1/receipts/redeem`` does, once.

The checks run in the server's order: the token's shape, the key of its
``kid``, the signature, the expiry, then the action's fingerprint against
``act``. The first that fails raises :class:`ReceiptInvalid`, whose
``reason`` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import jwt
import msgspec

from loopgate.domain.action import fingerprint
from loopgate.errors import LoopgateError
from loopgate.events import Action

ALGORITHM = "EdDSA"
CLAIMS = ("iss", "sub", "act", "wsp", "dec", "iat", "exp", "jti")
Reason = Literal["malformed", "unknown_kid", "bad_signature", "expired", "action_mismatch"]


class ReceiptInvalid(LoopgateError):
    """The receipt does not prove an approval of this action now; ``reason`` says why."""

    code = "invalid_receipt"

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message, code="invalid_receipt")
        self.reason: Reason = reason


def action_of(value: Action | Mapping[str, Any]) -> Action:
    """``value`` as an :class:`Action`: a ``{tool, args}`` mapping is converted and checked."""
    if isinstance(value, Action):
        return value
    try:
        return msgspec.convert(dict(value), Action)
    except (msgspec.ValidationError, TypeError, ValueError) as exc:
        raise ReceiptInvalid("malformed", f"the action is not {{tool, args}}: {exc}") from None


def key_id(token: str) -> str:
    """The ``kid`` of the token's header (``malformed`` if there is none, or not EdDSA)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise ReceiptInvalid("malformed", f"not a compact JWS: {exc}") from None
    if header.get("alg") != ALGORITHM:
        raise ReceiptInvalid("malformed", f"header alg is {header.get('alg')!r}, not EdDSA")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise ReceiptInvalid("malformed", "header has no kid")
    return kid


def verify_receipt(
    token: str,
    action: Action | Mapping[str, Any],
    jwks: Mapping[str, Any],
    *,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The receipt's claims, once it checks out for ``action`` at ``at`` (default now).

    ``jwks`` is the server's JWKS document (``{"keys": [...]}``). Raises
    :class:`ReceiptInvalid` with ``reason`` ``malformed``, ``unknown_kid``,
    ``bad_signature``, ``expired`` or ``action_mismatch``.
    """
    token = token.strip()
    kid = key_id(token)
    expected = action_of(action)
    try:
        keys = jwt.PyJWKSet.from_dict(dict(jwks))
    except (jwt.PyJWKSetError, jwt.PyJWKError, KeyError, TypeError) as exc:
        raise ReceiptInvalid("unknown_kid", f"no usable key in the JWKS: {exc}") from None
    try:
        key = keys[kid]
    except KeyError:
        raise ReceiptInvalid("unknown_kid", f"no key {kid!r} in the JWKS") from None
    try:
        # Expiry is checked below against ``at``, which may be another time than now.
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise ReceiptInvalid("bad_signature", f"signature does not match key {kid!r}") from None
    except jwt.InvalidTokenError as exc:
        raise ReceiptInvalid("malformed", f"not a receipt: {exc}") from None
    missing = [name for name in CLAIMS if name not in claims]
    if missing:
        raise ReceiptInvalid("malformed", f"claims missing: {', '.join(missing)}")
    for name in ("iat", "exp"):
        if not isinstance(claims[name], int) or isinstance(claims[name], bool):
            raise ReceiptInvalid("malformed", f"claim {name} is not epoch seconds")
    when = at or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    expires = datetime.fromtimestamp(claims["exp"], UTC)
    if when >= expires:
        raise ReceiptInvalid("expired", f"expired at {expires.isoformat()}")
    actual = fingerprint(expected)
    if claims["act"] != actual:
        raise ReceiptInvalid(
            "action_mismatch",
            f"the action's fingerprint {actual} is not the approved one {claims['act']}",
        )
    return claims
