"""The audit export: the log as NDJSON or CSV, one tenant's or narrowed further.

Export streams rows in position order, a batch at a time, so memory does not
grow with the log. Each record carries what an auditor reads (``actor``,
``channel``, ``data``) and what the chain needs to be checked again from the
file alone (``version``, the full ``meta``, ``prev_hash``, ``hash``; see
:mod:`loopgate.audit.verify`).

Secret fields (``events.SECRET_FIELDS``) are ``"[redacted]"`` in ``data``;
``digests`` carries, for each, the digest the chain hashes in its place, so
the file still verifies. ``legacy`` marks a row holding a secret written before
secrets were hashed by digest: its hash covers the secret in clear.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Iterable
from datetime import datetime

import msgspec

from loopgate.commands.sessions import read_session
from loopgate.events import EVENT_TYPES, SECRET_FIELDS, Meta, field_digest, redacted, secret_fields
from loopgate.store.base import EventStore
from loopgate.store.codec import Row, hashes_in_clear

BATCH = 2000
CSV_COLUMNS = (
    "position",
    "recorded_at",
    "stream",
    "version",
    "type",
    "actor",
    "tenant",
    "channel",
    "data",
    "meta",
    "prev_hash",
    "hash",
    "digests",
    "legacy",
)


class ExportFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events to export; None means no restriction."""

    tenant: str | None = None
    streams: frozenset[str] | None = None
    types: frozenset[str] | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One exported event; ``data`` and ``meta`` are the stored JSON, secrets redacted."""

    position: int
    recorded_at: datetime
    stream: str
    version: int
    type: str
    actor: str
    tenant: str
    channel: str | None
    data: msgspec.Raw
    meta: msgspec.Raw
    prev_hash: str
    hash: str
    digests: dict[str, str] | None = None
    legacy: bool = False


class _Channel(msgspec.Struct):
    channel: str | None = None


# Only these events say through which channel they happened; the rest need no decoding.
_WITH_CHANNEL = frozenset(
    tag
    for tag, cls in EVENT_TYPES.items()
    if any(field.name == "channel" for field in msgspec.structs.fields(cls))
)
_meta_decoder = msgspec.json.Decoder(Meta)
_channel_decoder = msgspec.json.Decoder(_Channel)
_encoder = msgspec.json.Encoder()


async def session_streams(
    store: EventStore, session_id: str, tenant: str | None = None
) -> frozenset[str]:
    """The streams of a session's story: its own and those of its requests.

    Session ids are per tenant; without ``tenant`` (an administrator's export of
    the whole log) that is every tenant's session of that id.
    """
    if tenant is None:
        rows = await store.fetch(
            "SELECT DISTINCT tenant FROM sessions WHERE session_id = ?", (session_id,)
        )
        tenants = sorted(row["tenant"] for row in rows)
    else:
        tenants = [tenant]
    streams: set[str] = set()
    for each in tenants:
        stream, _ = await read_session(store, each, session_id)
        requests = await store.fetch(
            "SELECT request_id FROM requests WHERE tenant = ? AND session_id = ?",
            (each, session_id),
        )
        streams.update([stream, *(f"request-{r['request_id']}" for r in requests)])
    return frozenset(streams)


def _selected(row: Row, meta: Meta, only: ExportFilter) -> bool:
    return (
        (only.tenant is None or meta.tenant == only.tenant)
        and (only.streams is None or row.stream in only.streams)
        and (only.types is None or row.type in only.types)
        and (only.since is None or row.recorded_at >= only.since)
        and (only.until is None or row.recorded_at < only.until)
    )


def _record(row: Row, meta: Meta) -> AuditRecord:
    data, digests = row.data, None
    if row.type in SECRET_FIELDS:
        decoded = msgspec.json.decode(row.data)
        if held := secret_fields(row.type, decoded):
            data = _encoder.encode(redacted(row.type, decoded)).decode()
            digests = {name: field_digest(value) for name, value in held.items()}
    return AuditRecord(
        position=row.position,
        recorded_at=row.recorded_at,
        stream=row.stream,
        version=row.version,
        type=row.type,
        actor=meta.actor,
        tenant=meta.tenant,
        channel=_channel_decoder.decode(row.data).channel if row.type in _WITH_CHANNEL else None,
        data=msgspec.Raw(data.encode()),
        meta=msgspec.Raw(row.meta.encode()),
        prev_hash=row.prev_hash,
        hash=row.hash,
        digests=digests,
        legacy=digests is not None and hashes_in_clear(row),
    )


async def export_batches(
    store: EventStore, only: ExportFilter, *, batch: int = BATCH
) -> AsyncIterator[list[AuditRecord]]:
    """The selected events in position order, a batch at a time (empty batches skipped).

    Reads the log up to its head when the export started, so a busy log does
    not make an export run for ever; the next batch is read while this one is
    encoded.
    """
    head = await store.head()
    pending = asyncio.create_task(store.read_rows(0, batch))
    try:
        while rows := [row for row in await pending if row.position <= head]:
            pending = asyncio.create_task(store.read_rows(rows[-1].position, batch))
            records = []
            for row in rows:
                meta = _meta_decoder.decode(row.meta)
                if _selected(row, meta, only):
                    records.append(_record(row, meta))
            if records:
                yield records
    finally:
        pending.cancel()


def ndjson(records: Iterable[AuditRecord]) -> bytes:
    return b"".join(_encoder.encode(record) + b"\n" for record in records)


def csv_header() -> bytes:
    return csv_rows([])


def csv_rows(records: Iterable[AuditRecord], *, header: bool = True) -> bytes:
    """CSV (RFC 4180 quoting, UTF-8); ``data``, ``meta`` and ``digests`` as JSON text."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for r in records:
        writer.writerow(
            (
                r.position,
                r.recorded_at.isoformat(),
                r.stream,
                r.version,
                r.type,
                r.actor,
                r.tenant,
                r.channel or "",
                bytes(r.data).decode(),
                bytes(r.meta).decode(),
                r.prev_hash,
                r.hash,
                _encoder.encode(r.digests).decode() if r.digests else "",
                "true" if r.legacy else "",
            )
        )
    return out.getvalue().encode()
