"""Secrets never leave: exports, streams and timelines redact them, and the chain still verifies.

The secret fields are the ones marked ``SECRET`` in ``loopgate/events.py``:
password hashes, API key hashes and the webhook signing secret.
"""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec
from account_helpers import AppClientFactory, api_key, new_key, sign_up
from console_helpers import sign_in
from database_scan import database_contents
from hitl_helpers import Client

from loopgate.audit.export import ExportFilter, export_batches, ndjson
from loopgate.audit.verify import Verification, verify_export, verify_log
from loopgate.channels.webhooks.secrets import SecretBox, WebhookSecrets
from loopgate.commands.base import utcnow
from loopgate.events import (
    REDACTED,
    SECRET_FIELDS,
    ApiKeyCreated,
    Meta,
    RecordedEvent,
    UserRegistered,
    WebhookSecretRotated,
)
from loopgate.store.base import EventStore
from loopgate.store.codec import row_hash
from loopgate.web.audit import timeline_entry
from loopgate.web.stream import message_data

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Secrets(NamedTuple):
    username: str
    raw_key: str
    key_hash: str
    webhook_secret: str


async def secret_activity(client: Client) -> Secrets:
    """A user with a password and an API key who reads and rotates the webhook secret."""
    alice = await sign_up(client, "alice")
    raw_key = (await new_key(client, alice, label="ci", kind="operator"))["raw_key"]
    first = await (await client.get("/v1/webhook-secret", headers=api_key(raw_key))).json()
    rotated = await (await client.post("/v1/webhook-secret", headers=api_key(raw_key))).json()
    assert first["secret"] != rotated["secret"]
    key_hash = hashlib.sha256(raw_key.encode()).hexdigest()
    return Secrets(alice.username, raw_key, key_hash, rotated["secret"])


def assert_no_secret(text: str, key_hash: str) -> None:
    assert "$argon2" not in text
    assert key_hash not in text
    assert "whsec_" not in text


async def test_an_export_holds_no_password_key_hash_or_webhook_secret_and_still_verifies(
    app_client: AppClientFactory,
) -> None:
    client = await app_client(require_api_key="true")
    _, raw_key, key_hash, _ = await secret_activity(client)

    body = await (await client.get("/v1/audit/export", headers=api_key(raw_key))).read()
    assert_no_secret(body.decode(), key_hash)
    lines = [msgspec.json.decode(line) for line in body.splitlines()]
    types = [line["type"] for line in lines]
    assert {"user.registered", "apikey.created", "tenant.webhook_secret_rotated"} <= set(types)
    for line in lines:
        for name in SECRET_FIELDS.get(line["type"], ()):
            assert line["data"][name] in (REDACTED, None)
    rotations = [line for line in lines if line["type"] == "tenant.webhook_secret_rotated"]
    assert all(set(line["digests"]) == {"sealed"} for line in rotations)

    checked = verify_export(body.splitlines())
    assert (checked.ok, checked.events, checked.unchecked) == (True, len(lines), ())

    csv_body = await (
        await client.get("/v1/audit/export", params={"format": "csv"}, headers=api_key(raw_key))
    ).text()
    assert_no_secret(csv_body, key_hash)
    rows = list(csv.DictReader(io.StringIO(csv_body)))
    assert [row["type"] for row in rows] == types
    assert [bool(row["digests"]) for row in rows] == [REDACTED in row["data"] for row in rows]
    assert sum(bool(row["digests"]) for row in rows) == 4  # password, key, two secrets


async def test_the_console_export_holds_no_secret_either(app_client: AppClientFactory) -> None:
    client = await app_client()
    username, _, key_hash, _ = await secret_activity(client)
    signed_in = await sign_in(client, username)
    assert signed_in.status == 303, await signed_in.text()
    response = await client.get("/console/export/download", params={"format": "ndjson"})
    assert response.status == 200, await response.text()
    body = await response.read()
    assert b"user.registered" in body
    assert_no_secret(body.decode(), key_hash)
    assert verify_export(body.splitlines()).ok


async def test_editing_a_digest_or_any_other_field_of_a_redacted_record_breaks_the_export(
    app_client: AppClientFactory,
) -> None:
    client = await app_client(require_api_key="true")
    raw_key = (await secret_activity(client)).raw_key
    body = await (await client.get("/v1/audit/export", headers=api_key(raw_key))).read()
    lines = body.splitlines()
    index = next(i for i, line in enumerate(lines) if b'"apikey.created"' in line)
    record = msgspec.json.decode(lines[index])

    def broken_at(edited: dict[str, object]) -> int | None:
        copy = [*lines[:index], msgspec.json.encode(edited), *lines[index + 1 :]]
        return verify_export(copy).broken_at

    digest = record["digests"]["key_hash"]
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    position = record["position"]
    assert broken_at({**record, "digests": {"key_hash": flipped}}) == position
    assert broken_at({**record, "digests": {}}) == position
    assert broken_at({**record, "data": {**record["data"], "label": "prod"}}) == position
    # A value shown beside its digest is not taken on trust.
    assert broken_at({**record, "data": {**record["data"], "key_hash": "anything"}}) == position
    # Nor can a record claim to predate digests when it does not hold a secret.
    assert broken_at({**record, "type": "apikey.revoked", "legacy": True}) == position


async def test_the_database_holds_the_webhook_secret_only_sealed(
    app_client: AppClientFactory, store: EventStore, store_url: str
) -> None:
    client = await app_client(require_api_key="true")
    secret = (await secret_activity(client)).webhook_secret
    stored = await database_contents(store_url)
    assert "tenant.webhook_secret_rotated" in stored  # the scan sees the secrets' events
    assert secret not in stored
    assert secret.removeprefix("whsec_") not in stored
    assert "whsec_" not in stored


def recorded(event: UserRegistered | ApiKeyCreated | WebhookSecretRotated) -> RecordedEvent:
    return RecordedEvent(
        position=1,
        stream="user-u1",
        version=1,
        event=event,
        meta=Meta(),
        recorded_at=T0,
        prev_hash="0" * 64,
        hash="0" * 64,
    )


def test_streams_and_timelines_show_secret_fields_redacted() -> None:
    events = (
        UserRegistered(user_id="u1", username="a", password_hash="$argon2id$x", registered_at=T0),
        ApiKeyCreated(
            key_id="k1", user_id="u1", label="l", key_hash="ab" * 32, prefix="p", created_at=T0
        ),
        WebhookSecretRotated(tenant="u1", secret="whsec_old", rotated_at=T0),
    )
    for event in events:
        record = recorded(event)
        sent = msgspec.json.decode(message_data(record))["data"]
        shown = timeline_entry(record).details
        for name in SECRET_FIELDS[record.type]:
            if getattr(event, name) is not None:
                assert sent[name] == shown[name] == REDACTED
        assert_no_secret(message_data(record) + str(shown), "ab" * 32)


async def test_a_log_written_before_digests_still_verifies_and_its_clear_secret_still_signs(
    store: EventStore,
) -> None:
    old = WebhookSecretRotated(tenant="t", secret="whsec_from_before", rotated_at=T0)
    await store.append("tenant-t", 0, [old], Meta(tenant="t"))
    (row,) = [r for r in await store.read_rows(0, 100) if r.stream == "tenant-t"]
    # As the row was hashed before secrets were digested: its data in clear.
    legacy = row_hash(row, legacy=True)
    await store.execute("UPDATE events SET hash = ? WHERE position = ?", [legacy, row.position])
    row = msgspec.structs.replace(row, hash=legacy)

    assert (await verify_log(store)).ok
    box = SecretBox(lambda: bytes(32))
    assert await WebhookSecrets(store, utcnow, box).current("t") == "whsec_from_before"

    # An export made before redaction (the stored data as it is) still verifies.
    unredacted = msgspec.json.encode(
        {
            **msgspec.to_builtins(row),
            "data": msgspec.json.decode(row.data),
            "meta": msgspec.json.decode(row.meta),
        }
    )
    assert verify_export([unredacted]) == Verification(
        events=1, head=legacy, last_position=row.position
    )
    # Today's export redacts it: the row is linked, but cannot be recomputed from the file.
    exported = b"".join(
        [ndjson(batch) async for batch in export_batches(store, ExportFilter(tenant="t"))]
    )
    assert b"whsec_" not in exported
    assert msgspec.json.decode(exported)["legacy"] is True
    checked = verify_export(exported.splitlines())
    assert (checked.ok, checked.unchecked) == (True, (row.position,))
