"""A receipt as a token: the claims of a decision, signed as a compact JWS (EdDSA).

Header ``{alg: EdDSA, kid, typ: JWT}``; claims ``iss`` (``receipts.issuer``),
``sub`` and ``jti`` (the request id: one receipt per request), ``act`` (the
approved action's fingerprint, lowercase hex SHA-256 of its RFC 8785 JSON),
``wsp`` (the workspace), ``dec`` (``decided_by`` and the ``votes``), ``iat``
(the decision, in epoch seconds) and ``exp`` (``iat`` + ``receipts.ttl_seconds``).

Everything in the claims comes from the decision, and Ed25519 signatures are
deterministic, so the same request gives the same token on every read: no
token is stored anywhere.
"""

from __future__ import annotations

from typing import Any

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from loopgate.errors import DomainError
from loopgate.views import RequestView, decided_by, public_request

ALGORITHM = "EdDSA"
REQUIRED = ("iss", "sub", "act", "wsp", "dec", "iat", "exp", "jti")


def invalid(message: str) -> DomainError:
    return DomainError(message, code="invalid_receipt")


def claims_of(view: RequestView, issuer: str, ttl_seconds: int) -> dict[str, Any]:
    """The claims of an approved request's receipt (the caller checked it has an action)."""
    assert view.decided_at is not None and view.decided_fingerprint is not None
    iat = int(view.decided_at.timestamp())
    decided: dict[str, Any] = {
        "decided_by": msgspec.to_builtins(decided_by(view)),
        "votes": msgspec.to_builtins(public_request(view).votes),
    }
    return {
        "iss": issuer,
        "sub": view.request_id,
        "act": view.decided_fingerprint,
        "wsp": view.tenant,
        "dec": decided,
        "iat": iat,
        "exp": iat + ttl_seconds,
        "jti": view.request_id,
    }


def sign(claims: dict[str, Any], kid: str, key: Ed25519PrivateKey) -> str:
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": kid, "typ": "JWT"})


def kid_of(token: str) -> str:
    """The ``kid`` of a token's header, unverified; ``invalid_receipt`` if there is none."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise invalid(f"the receipt is not a compact JWS: {exc}") from None
    kid = header.get("kid")
    if header.get("alg") != ALGORITHM or not isinstance(kid, str):
        raise invalid("the receipt's header names no EdDSA key (alg, kid)")
    return kid


def verified(token: str, key: Ed25519PublicKey, issuer: str) -> dict[str, Any]:
    """The claims of a token whose signature ``key`` checks; ``invalid_receipt`` otherwise.

    Expiry is left to the caller, who judges it on the server's clock and
    answers it with its own status (410), not as a bad token.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            issuer=issuer,
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": list(REQUIRED),
            },
        )
    except jwt.PyJWTError as exc:
        raise invalid(f"the receipt does not verify: {exc}") from None
    strings = ("sub", "act", "wsp", "jti")
    if (
        not all(isinstance(claims[c], str) for c in strings)
        or not all(isinstance(claims[c], int) for c in ("iat", "exp"))
        or not isinstance(claims["dec"], dict)
    ):
        raise invalid("the receipt's claims are not of the expected types")
    return claims
