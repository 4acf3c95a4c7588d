"""No private key material anywhere: not in the database, the log, an export or a log line.

For every signing key the log names, the test derives its seed (the Ed25519
private key's raw bytes) and looks for it, and for the server key it comes
from, in every spelling: raw, hex, base64 and base64url.
"""

from __future__ import annotations

import asyncio
import base64
import sys
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from database_scan import database_contents
from receipt_helpers import Client, approved, redeem
from server_key import TEST_SECRETS
from structlog.testing import capture_logs

from loopgate.config import decode_secrets_key
from loopgate.events import SigningKeyAdded
from loopgate.receipts.keys import STREAM, derive_seed, private_key
from loopgate.store.base import EventStore
from loopgate.web.keys import RECEIPTS


def spellings(raw: bytes) -> list[str]:
    b64 = base64.b64encode(raw).decode()
    b64url = base64.urlsafe_b64encode(raw).decode()
    return [
        raw.decode("latin-1"),
        raw.hex(),
        raw.hex().upper(),
        b64,
        b64.rstrip("="),
        b64url,
        b64url.rstrip("="),
    ]


def secrets_of(kids: list[str]) -> list[str]:
    server_key = decode_secrets_key(TEST_SECRETS.key)
    found = spellings(server_key)
    for kid in kids:
        seed = derive_seed(server_key, kid)
        pem = private_key(server_key, kid).private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
        found += [*spellings(seed), pem.decode()]
    return found


def assert_none_in(text: str, secrets: list[str], where: str) -> None:
    for secret in secrets:
        assert secret not in text, f"private key material in {where}"


async def test_no_private_key_is_in_the_database_the_log_an_export_or_the_logs(
    client: Client, store: EventStore, store_url: str, tmp_path: Path
) -> None:
    with capture_logs() as logs:
        request = await approved(client)
        await client.app[RECEIPTS].rotate()
        after = await approved(client)
        for token in (request["receipt"], after["receipt"]):
            assert (await redeem(client, token))[0] == 200
        exported = await (await client.get("/v1/audit/export")).text()
    history = await store.read_stream(STREAM)
    kids = [r.event.kid for r in history if isinstance(r.event, SigningKeyAdded)]
    assert len(kids) == 2
    secrets = secrets_of(kids)

    assert "signing_key.added" in exported and "receipt.redeemed" in exported
    assert_none_in(exported, secrets, "the audit export (HTTP)")
    log_text = "\n".join(repr(entry) for entry in logs)
    assert logs
    assert_none_in(log_text, secrets, "the log lines")

    out = tmp_path / "export.ndjson"
    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "loopgate", "audit", "export", "--db", store_url, "--output", str(out)
    )
    assert await done.wait() == 0
    assert_none_in(out.read_text(), secrets, "loopgate audit export")

    everything: list[Any] = [r.event for r in await store.read_all(0, 10_000)]
    assert_none_in(repr(everything), secrets, "the event log")
    await asyncio.sleep(0.1)  # let the group commit settle before the files are read
    assert_none_in(await database_contents(store_url), secrets, "the database")
