"""``loopgate receipt verify``: offline checks of a receipt, against keys made here, not a server's.

The tokens are signed in the test with its own Ed25519 keys, so these tests
pin the contract (compact JWS, EdDSA, kid; ``act`` the RFC 8785 fingerprint)
rather than whatever the server happens to mint.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

from loopgate.cli import main
from loopgate.receipts.verify import ReceiptInvalid, verify_receipt

ISSUED = int(datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp())
ACTION: dict[str, Any] = {"tool": "deploy", "args": {"env": "prod", "replicas": 3}}


def jwk(key: Ed25519PrivateKey, kid: str) -> dict[str, Any]:
    public: dict[str, Any] = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return public | {"kid": kid, "alg": "EdDSA", "use": "sig"}


def act(action: dict[str, Any]) -> str:
    return hashlib.sha256(rfc8785.dumps(action)).hexdigest()


def claims(**changes: Any) -> dict[str, Any]:
    return {
        "iss": "https://loopgate.example",
        "sub": "req-1",
        "act": act(ACTION),
        "wsp": "default",
        "dec": {
            "decided_by": {"kind": "human", "id": "alice"},
            "votes": [
                {
                    "member": "alice",
                    "option": "Approve",
                    "text": None,
                    "approves": True,
                    "channel": "console",
                    "at": "2026-05-01T12:00:00+00:00",
                }
            ],
        },
        "iat": ISSUED,
        "exp": ISSUED + 3600,
        "jti": "req-1",
    } | changes


def token(key: Ed25519PrivateKey, kid: str = "k1", **changes: Any) -> str:
    return jwt.encode(claims(**changes), key, algorithm="EdDSA", headers={"kid": kid})


@pytest.fixture(autouse=True)
def keep_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main`` in-process must not point the suite's logging at this test's captured streams."""
    monkeypatch.setattr("loopgate.cli.configure_logging", lambda *args, **kwargs: None)


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def files(tmp_path: Path, key: Ed25519PrivateKey) -> dict[str, Path]:
    other = Ed25519PrivateKey.generate()
    paths = {"jwks": tmp_path / "jwks.json", "action": tmp_path / "action.json"}
    paths["jwks"].write_text(json.dumps({"keys": [jwk(other, "k0"), jwk(key, "k1")]}))
    paths["action"].write_text(json.dumps(ACTION))
    return paths


def verify(
    receipt: str, files: dict[str, Path], *extra: str, action: Path | str | None = None
) -> list[str]:
    return [
        "receipt",
        "verify",
        receipt,
        "--action",
        str(action or files["action"]),
        "--jwks",
        str(files["jwks"]),
        "--at",
        "2026-05-01T12:30:00+00:00",
        *extra,
    ]


def test_a_valid_receipt_prints_its_claims(
    key: Ed25519PrivateKey, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(verify(token(key), files)) == 0
    out = capsys.readouterr().out
    assert out.startswith("receipt is valid\n")
    for line in (
        "request    req-1",
        "workspace  default",
        f"action     {act(ACTION)}",
        "decided    2026-05-01T12:00:00+00:00 by human:alice",
        "expires    2026-05-01T13:00:00+00:00",
        "key        k1",
        "vote       alice approves (Approve) via console",
    ):
        assert line in out


def test_key_order_and_spacing_of_the_action_do_not_matter(
    key: Ed25519PrivateKey, files: dict[str, Path], tmp_path: Path
) -> None:
    respelled = tmp_path / "respelled.json"
    respelled.write_text('{ "args": {"replicas": 3.0, "env": "prod"},\n  "tool": "deploy" }')
    assert main(verify(token(key), files, action=respelled)) == 0


def test_receipt_from_a_file_and_action_from_stdin(
    key: Ed25519PrivateKey,
    files: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    saved = tmp_path / "receipt.jws"
    saved.write_text(token(key) + "\n")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(ACTION)))
    assert main(verify(f"@{saved}", files, action="-")) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO(token(key)))
    assert main(verify("-", files)) == 0


@pytest.mark.parametrize(
    ("make", "at", "reason"),
    [
        pytest.param(
            lambda key: token(Ed25519PrivateKey.generate()), None, "bad signature", id="forged"
        ),
        pytest.param(lambda key: token(key, kid="k9"), None, "unknown kid", id="unknown-kid"),
        pytest.param(lambda key: token(key), "2026-05-01T13:00:00Z", "expired", id="expired"),
        pytest.param(
            lambda key: token(key, act=act({"tool": "deploy", "args": {"env": "dev"}})),
            None,
            "action mismatch",
            id="other-action",
        ),
        pytest.param(lambda key: "not-a-token", None, "malformed", id="garbage"),
        pytest.param(
            lambda key: jwt.encode({"sub": "req-1"}, key, algorithm="EdDSA", headers={"kid": "k1"}),
            None,
            "malformed",
            id="claims-missing",
        ),
        pytest.param(
            lambda key: jwt.encode(claims(), "s" * 32, algorithm="HS256", headers={"kid": "k1"}),
            None,
            "malformed",
            id="not-eddsa",
        ),
    ],
)
def test_each_failure_is_one_line_and_exit_1(
    key: Ed25519PrivateKey,
    files: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    make: Any,
    at: str | None,
    reason: str,
) -> None:
    argv = verify(make(key), files)
    if at is not None:
        argv[-1] = at
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith(f"loopgate: receipt {reason}: ")


def test_expiry_is_judged_at_the_time_given(key: Ed25519PrivateKey, files: dict[str, Path]) -> None:
    argv = verify(token(key), files)
    argv[-1] = "2026-05-01T12:59:59+00:00"
    assert main(argv) == 0
    # Without --at it is now, long after this receipt's hour.
    assert main(argv[:-2]) == 1


def test_a_tampered_action_file_is_a_mismatch(
    key: Ed25519PrivateKey, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["action"].write_text(json.dumps({"tool": "deploy", "args": {"env": "prod"}}))
    assert main(verify(token(key), files)) == 1
    assert "receipt action mismatch" in capsys.readouterr().err
    files["action"].write_text('["deploy"]')
    assert main(verify(token(key), files)) == 1
    assert "receipt malformed" in capsys.readouterr().err


def test_unreadable_inputs_are_usage_errors(
    key: Ed25519PrivateKey, files: dict[str, Path], tmp_path: Path
) -> None:
    assert main(verify(token(key), files, action=tmp_path / "missing.json")) == 2
    files["jwks"].write_text("[]")
    assert main(verify(token(key), files)) == 2
    argv = verify(token(key), files)
    argv[-1] = "yesterday"
    assert main(argv) == 2


@pytest.fixture
def jwks_url(files: dict[str, Path]) -> Iterator[str]:
    document = files["jwks"].read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/.well-known/jwks.json"
            self.send_response(200 if found else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document if found else b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_jwks_may_be_fetched_from_a_url(
    key: Ed25519PrivateKey,
    files: dict[str, Path],
    jwks_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = verify(token(key), files)
    argv[argv.index("--jwks") + 1] = f"{jwks_url}/.well-known/jwks.json"
    assert main(argv) == 0
    argv[argv.index("--jwks") + 1] = f"{jwks_url}/nowhere"
    assert main(argv) == 1
    assert "cannot fetch the JWKS" in capsys.readouterr().err


def test_verify_receipt_returns_the_claims_and_names_the_reason(key: Ed25519PrivateKey) -> None:
    jwks = {"keys": [jwk(key, "k1")]}
    at = datetime(2026, 5, 1, 12, 30, tzinfo=UTC)
    assert verify_receipt(token(key), ACTION, jwks, at=at) == claims()
    with pytest.raises(ReceiptInvalid) as mismatch:
        verify_receipt(token(key), {"tool": "deploy", "args": {}}, jwks, at=at)
    assert (mismatch.value.reason, mismatch.value.code) == ("action_mismatch", "invalid_receipt")
    with pytest.raises(ReceiptInvalid) as no_keys:
        verify_receipt(token(key), ACTION, {"keys": []}, at=at)
    assert no_keys.value.reason == "unknown_kid"
