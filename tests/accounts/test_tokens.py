"""Login tokens: HS256 only, our issuer only, every claim present, not expired."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from loopgate.accounts.tokens import issue_token, verify_token
from loopgate.errors import Unauthorized

# Long enough that even HS512 signs without a short-key warning.
SECRET = "test-secret-0123456789abcdefghijklmnopqrstuvwxyz-0123456789ABCDEF"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
TTL = 3600


def claims(**changes: Any) -> dict[str, Any]:
    iat = int(T0.timestamp())
    base = {"iss": "loopgate", "sub": "u1", "name": "alice", "iat": iat, "exp": iat + TTL}
    return {k: v for k, v in (base | changes).items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(token: str, now: datetime = T0) -> str:
    """The message of the ``invalid_token`` refusal ``token`` gets."""
    with pytest.raises(Unauthorized) as raised:
        verify_token(token, SECRET, now=now)
    assert (raised.value.status, raised.value.code) == (401, "invalid_token")
    return raised.value.message


def refused_now(token: str) -> str:
    """Like :func:`refused`, against the wall clock."""
    with pytest.raises(Unauthorized) as raised:
        verify_token(token, SECRET)
    assert raised.value.code == "invalid_token"
    return raised.value.message


def test_a_token_names_its_user() -> None:
    token = issue_token("u1", "alice", SECRET, TTL, T0)
    assert verify_token(token, SECRET, now=T0 + timedelta(seconds=TTL - 1)) == ("u1", "alice")


def test_a_token_carries_the_documented_claims_signed_with_hs256() -> None:
    token = issue_token("u1", "alice", SECRET, TTL, T0)
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert jwt.decode(token, options={"verify_signature": False}) == claims()


def test_without_a_now_checks_against_the_wall_clock() -> None:
    fresh = issue_token("u1", "alice", SECRET, TTL, datetime.now(UTC))
    assert verify_token(fresh, SECRET) == ("u1", "alice")
    assert "expired" in refused_now(issue_token("u1", "alice", SECRET, TTL, T0))


@pytest.mark.parametrize("after", [TTL, TTL + 1, 10 * TTL])
def test_refuses_an_expired_token(after: int) -> None:
    token = issue_token("u1", "alice", SECRET, TTL, T0)
    assert "expired" in refused(token, T0 + timedelta(seconds=after))


def test_refuses_a_token_signed_with_another_secret() -> None:
    token = issue_token("u1", "alice", SECRET + "-other", TTL, T0)
    assert "signature" in refused(token)


def test_refuses_a_token_whose_payload_was_changed() -> None:
    header, _payload, signature = issue_token("u1", "alice", SECRET, TTL, T0).split(".")
    forged = b64(json.dumps(claims(sub="admin")).encode())
    assert "signature" in refused(f"{header}.{forged}.{signature}")


def test_refuses_a_token_whose_signature_was_changed() -> None:
    header, payload, _signature = issue_token("u1", "alice", SECRET, TTL, T0).split(".")
    assert "signature" in refused(f"{header}.{payload}.{b64(b'x' * 32)}")


def test_refuses_an_unsigned_token_with_alg_none() -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    assert "algorithm" in refused(f"{header}.{payload}.")


def test_refuses_a_token_signed_with_hs512_even_with_our_secret() -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS512")
    assert "algorithm" in refused(token)


def test_refuses_a_token_signed_with_rs256() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(), key, algorithm="RS256")
    assert "algorithm" in refused(token)


def test_refuses_a_token_from_another_issuer() -> None:
    token = jwt.encode(claims(iss="someone-else"), SECRET, algorithm="HS256")
    assert "issued by loopgate" in refused(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "iss", "name"])
def test_refuses_a_token_missing_a_claim(claim: str) -> None:
    token = jwt.encode(claims(**{claim: None}), SECRET, algorithm="HS256")
    assert repr(claim) in refused(token)


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"sub": 42}, "malformed"),
        ({"sub": ""}, "names no user"),
        ({"name": ["alice"]}, "names no user"),
        ({"exp": "tomorrow"}, "not numbers"),
        ({"iat": True}, "not numbers"),
        ({"iat": int(T0.timestamp()) + 3600}, "in the future"),
    ],
    ids=["sub not text", "empty sub", "name not text", "exp text", "iat bool", "iat future"],
)
def test_refuses_a_token_with_odd_claims(changes: dict[str, Any], complaint: str) -> None:
    token = jwt.encode(claims(**changes), SECRET, algorithm="HS256")
    assert complaint in refused(token)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "lk_pub_notajwt", "é.é.é"])
def test_refuses_garbage(token: str) -> None:
    assert "malformed" in refused(token)
