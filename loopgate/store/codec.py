"""How events become rows and rows become events, and the hash chain over them.

The hash of a row covers everything a reader relies on (position, stream,
version, type, data, meta, recorded_at) plus the previous row's hash, so
editing, inserting or deleting any stored event breaks the chain from there on.
The canonical form is JSON with sorted keys and integral floats written as
integers (by their decimal digits), because Postgres JSONB normalises ``1e3``
to ``1000`` and ``1e23`` to ``100000000000000000000000``: the hash must
come out the same whether it is computed before the insert or from what the
database hands back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from loopgate.errors import CorruptEvent
from loopgate.events import EVENT_TYPES, Event, Meta, RecordedEvent

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
) -> str:
    """sha256(prev_hash || canonical(event)) as hex."""
    canonical = msgspec.json.encode(
        {
            "data": _normalised(msgspec.json.decode(data)),
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


def row_hash(row: Row) -> str:
    """Recompute a stored row's hash from its own columns and ``prev_hash``."""
    return chain_hash(
        row.prev_hash,
        position=row.position,
        stream=row.stream,
        version=row.version,
        type=row.type,
        data=row.data,
        meta=row.meta,
        recorded_at=row.recorded_at,
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
