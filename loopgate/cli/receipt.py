"""``loopgate receipt verify``: check a receipt offline, with nothing but the server's public keys.

It reads no configuration and opens no store; the only network use is
fetching ``--jwks`` when it is a URL. Exit 0 and the claims when the receipt
proves an approval of the action in ``--action``; exit 1 and one line saying
why when it does not (``bad signature``, ``unknown kid``, ``expired``,
``action mismatch``, ``malformed``). Verifying does not use the receipt up.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import msgspec

from loopgate import __version__
from loopgate.cli.common import UsageError
from loopgate.receipts.verify import ReceiptInvalid, key_id, verify_receipt

JWKS_FETCH_SECONDS = 10.0


def _read(source: str, what: str, stdin: IO[str]) -> str:
    """``-`` is standard input, anything else a path."""
    if source == "-":
        return stdin.read()
    try:
        return Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"receipt verify: cannot read {what} {source}: {exc.strerror}") from None


def read_token(source: str, stdin: IO[str]) -> str:
    """RECEIPT as given: the token itself, ``-`` (standard input) or ``@FILE``."""
    if source == "-":
        return stdin.read().strip()
    if source.startswith("@"):
        return _read(source[1:], "receipt", stdin).strip()
    return source.strip()


def read_jwks(source: str, stdin: IO[str]) -> dict[str, Any]:
    """The JWKS from a file, standard input or an ``http(s)://`` URL (e.g. the server's)."""
    if source.startswith(("http://", "https://")):
        request = urllib.request.Request(
            source, headers={"User-Agent": f"loopgate/{__version__}", "Accept": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=JWKS_FETCH_SECONDS) as response:
                raw = response.read()
        except (urllib.error.URLError, OSError) as exc:
            message = f"cannot fetch the JWKS from {source}: {exc}"
            raise ReceiptInvalid("unknown_kid", message) from None
    else:
        raw = _read(source, "JWKS", stdin).encode()
    try:
        jwks = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise UsageError(f"receipt verify: the JWKS is not JSON: {exc}") from None
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise UsageError('receipt verify: the JWKS is not {"keys": [...]}')
    return jwks


def read_action(source: str, stdin: IO[str]) -> dict[str, Any]:
    """The action about to run, JSON ``{tool, args}``; its shape is checked by the verifier."""
    try:
        action = msgspec.json.decode(_read(source, "action", stdin))
    except msgspec.DecodeError as exc:
        raise ReceiptInvalid("malformed", f"the action is not JSON: {exc}") from None
    if not isinstance(action, dict):
        raise ReceiptInvalid("malformed", "the action is not a JSON object {tool, args}")
    return action


def parse_at(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"receipt verify: --at {value!r} is not an ISO 8601 time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _epoch(seconds: Any) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def describe(claims: dict[str, Any], kid: str) -> str:
    """The claims, one per line, for a human."""
    dec = claims.get("dec")
    decision: dict[str, Any] = dec if isinstance(dec, dict) else {}
    by = decision.get("decided_by") or {}
    lines = [
        "receipt is valid",
        f"  request    {claims['sub']}",
        f"  workspace  {claims['wsp']}",
        f"  action     {claims['act']}",
        f"  issuer     {claims['iss']}",
        f"  decided    {_epoch(claims['iat'])}"
        + (f" by {by.get('kind')}:{by.get('id')}" if isinstance(by, dict) and by else ""),
        f"  expires    {_epoch(claims['exp'])}",
        f"  receipt id {claims['jti']}",
        f"  key        {kid}",
    ]
    for vote in decision.get("votes") or ():
        if isinstance(vote, dict):
            verdict = "approves" if vote.get("approves") else "rejects"
            answer = vote.get("option") if vote.get("option") is not None else vote.get("text")
            lines.append(
                f"  vote       {vote.get('member')} {verdict} ({answer}) via {vote.get('channel')}"
                f" at {vote.get('at')}"
            )
    return "\n".join(lines)


def receipt_verify(
    receipt: str,
    action: str,
    jwks: str,
    at: str | None = None,
    *,
    stdin: IO[str] | None = None,
    out: IO[str] | None = None,
) -> int:
    """Exit code 0 (valid, the claims printed) or 1 (the reason printed on standard error)."""
    stdin = sys.stdin if stdin is None else stdin
    out = sys.stdout if out is None else out
    if [receipt, action, jwks].count("-") > 1:
        raise UsageError("receipt verify: only one of RECEIPT, --action, --jwks may be -")
    when = parse_at(at)
    token = read_token(receipt, stdin)
    try:
        document = read_jwks(jwks, stdin)
        claims = verify_receipt(token, read_action(action, stdin), document, at=when)
        kid = key_id(token)
    except ReceiptInvalid as exc:
        print(f"loopgate: receipt {exc.reason.replace('_', ' ')}: {exc.message}", file=sys.stderr)
        return 1
    print(describe(claims, kid), file=out)
    return 0
