"""Login tokens: HS256 JWTs that name a user, issued at login and checked per request.

A token carries ``iss="loopgate"``, ``sub`` (the user id), ``name`` (the
username), ``iat`` and ``exp``. Verification accepts HS256 only: the header's
``alg`` is never trusted, so ``none``, another HMAC size or a public-key
algorithm (whose "key" would be our secret) are all refused. Every failure is
``Unauthorized`` with code ``invalid_token`` and a message saying what was wrong.

Expiry is checked against a ``now`` the caller may pass (the handler's clock),
not only against the wall clock, so tests and the server agree on time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import jwt

from loopgate.errors import Unauthorized

ISSUER = "loopgate"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "name")
CLOCK_SKEW_SECONDS = 60
"""How far in the future ``iat`` may lie: servers behind one balancer may disagree a little."""


def issue_token(user_id: str, username: str, secret: str, ttl_seconds: int, now: datetime) -> str:
    """A signed token for ``user_id``, valid for ``ttl_seconds`` from ``now``."""
    issued_at = int(now.timestamp())
    claims = {
        "iss": ISSUER,
        "sub": user_id,
        "name": username,
        "iat": issued_at,
        "exp": issued_at + ttl_seconds,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, now: datetime | None = None) -> tuple[str, str]:
    """The ``(user_id, username)`` a valid token names; ``Unauthorized`` otherwise."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            # Times are checked below, against the caller's clock.
            options={"require": list(REQUIRED_CLAIMS), "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidAlgorithmError:
        raise _invalid("token algorithm is not HS256") from None
    except jwt.InvalidSignatureError:
        raise _invalid("token signature does not match") from None
    except jwt.InvalidIssuerError:
        raise _invalid(f"token was not issued by {ISSUER}") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _invalid(f"token lacks the {exc.claim!r} claim") from None
    except jwt.InvalidTokenError as exc:  # malformed, undecodable, bad sub type, ...
        raise _invalid(f"token is malformed: {exc}") from None
    user_id, username = claims["sub"], claims["name"]
    if not isinstance(username, str) or not user_id:
        raise _invalid("token names no user")
    exp, iat = claims["exp"], claims["iat"]
    if not _is_number(exp) or not _is_number(iat):
        raise _invalid("token times are not numbers")
    at = (now or datetime.now(UTC)).timestamp()
    if at >= exp:
        raise _invalid("token has expired")
    if iat > at + CLOCK_SKEW_SECONDS:
        raise _invalid("token was issued in the future")
    return user_id, username


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _invalid(message: str) -> Unauthorized:
    return Unauthorized(message, code="invalid_token")
