"""How events become rows and rows become events, and the hash chain over them.

The hash of a row covers everything a reader relies on (position, stream,
version, type, data, meta, recorded_at) plus the previous row's hash, so
editing, inserting or deleting any stored event breaks the chain from there on.
The canonical form is JSON with sorted keys and integral floats written as
integers (by their decimal digits), because Postgres JSONB normalises ``1e3``
to ``1000`` and ``1e23`` to ``100000000000000000000000``: the hash must
come out the same whether it is computed before the insert or from what the
database hands back.

Secret fields (marked ``SECRET`` in the catalog: password and key hashes, the
webhook secret) enter the hash by their digest: the canonical form holds
``"sha256:" + field_digest(value)`` in their place. So the chain still covers
the stored value (change it and its digest changes), yet a redacted export
that carries each secret's digest can be checked without the secret itself
(:func:`chain_hash` with ``digests``). For an event with no secret field the
canonical form is the stored data as it is, so every such row hashes as it
always did. Rows holding a secret that were written before this rule hash
their data in clear (``legacy=True``): ``audit verify`` on the live log
checks them that way, and an export can link them but not recompute them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from loopgate.errors import CorruptEvent
from loopgate.events import (
    EVENT_TYPES,
    REDACTED,
    SECRET_FIELDS,
    Event,
    Meta,
    RecordedEvent,
    field_digest,
    secret_fields,
)

GENESIS_HASH = "0" * 64


class Row(msgspec.Struct, frozen=True, kw_only=True):
    """The columns of the ``events`` table, with ``data``/``meta`` as JSON text."""

    position: int
    stream: str
    version: int
    type: str
    data: str
    meta: str
    recorded_at: datetime
    prev_hash: str
    hash: str


def row_of(columns: Sequence[Any], recorded_at: Callable[[Any], datetime] = lambda t: t) -> Row:
    """A ``Row`` from the ``events`` columns in table order; ``recorded_at`` parses the time."""
    position, stream, version, type_, data, meta, recorded, prev_hash, digest = columns
    return Row(
        position=position,
        stream=stream,
        version=version,
        type=type_,
        data=data,
        meta=meta,
        recorded_at=recorded_at(recorded),
        prev_hash=prev_hash,
        hash=digest,
    )


_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> str:
    return _encoder.encode(event).decode()


def encode_meta(meta: Meta) -> str:
    return _encoder.encode(meta).decode()


def _normalised(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        # JSONB keeps the decimal that was written, so 1e23 comes back as
        # 100000000000000000000000, not as the float's binary value int(1e23).
        return int(Decimal(repr(value)))
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _canonical_data(type_: str, data: str, digests: dict[str, str] | None) -> Any:
    value = _normalised(msgspec.json.decode(data))
    if type_ not in SECRET_FIELDS or not isinstance(value, dict):
        return value
    held = secret_fields(type_, value)
    if digests is None:
        digests = {name: field_digest(secret) for name, secret in held.items()}
    elif digests.keys() != held.keys() or any(v != REDACTED for v in held.values()):
        # A digest stands in for a redacted value only: a value shown beside
        # its digest would be trusted unchecked.
        raise ValueError(f"{type_} digests must stand for its redacted secrets, {sorted(held)}")
    return {**value, **{name: f"sha256:{digest}" for name, digest in digests.items()}}


def chain_hash(
    prev_hash: str,
    *,
    position: int,
    stream: str,
    version: int,
    type: str,
    data: str,
    meta: str,
    recorded_at: datetime,
    digests: dict[str, str] | None = None,
    legacy: bool = False,
) -> str:
    """sha256(prev_hash || canonical(event)) as hex.

    Secret fields are hashed by their digest, computed from ``data`` or, for a
    redacted ``data``, taken from ``digests`` (one per secret field that holds
    a value, else ``ValueError``). ``legacy`` hashes ``data`` in clear, as rows
    holding a secret were hashed before.
    """
    canonical = msgspec.json.encode(
        {
            "data": (
                _normalised(msgspec.json.decode(data))
                if legacy
                else _canonical_data(type, data, digests)
            ),
            "meta": _normalised(msgspec.json.decode(meta)),
            "position": position,
            "recorded_at": recorded_at,
            "stream": stream,
            "type": type,
            "version": version,
        },
        order="sorted",
    )
    return hashlib.sha256(prev_hash.encode() + canonical).hexdigest()


def row_hash(row: Row, *, digests: dict[str, str] | None = None, legacy: bool = False) -> str:
    """Recompute a row's hash from its own columns and ``prev_hash`` (see :func:`chain_hash`)."""
    return chain_hash(
        row.prev_hash,
        position=row.position,
        stream=row.stream,
        version=row.version,
        type=row.type,
        data=row.data,
        meta=row.meta,
        recorded_at=row.recorded_at,
        digests=digests,
        legacy=legacy,
    )


def hashes_in_clear(row: Row) -> bool:
    """Whether a stored row holds a secret and was hashed before secrets were digested."""
    return (
        row.type in SECRET_FIELDS
        and row_hash(row) != row.hash
        and row_hash(row, legacy=True) == row.hash
    )


def decode_row(row: Row) -> RecordedEvent:
    """Turn a stored row into a :class:`RecordedEvent`; never skip a bad one."""
    cls = EVENT_TYPES.get(row.type)
    if cls is None:
        raise CorruptEvent(row.position, f"unknown event type {row.type!r}")
    try:
        event = msgspec.json.decode(row.data, type=cls)
        meta = msgspec.json.decode(row.meta, type=Meta)
    except msgspec.DecodeError as exc:
        raise CorruptEvent(row.position, str(exc)) from exc
    return RecordedEvent(
        position=row.position,
        stream=row.stream,
        version=row.version,
        event=event,
        meta=meta,
        recorded_at=row.recorded_at,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
