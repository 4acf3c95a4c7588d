"""Rows, events and the hash chain over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from loopgate.errors import CorruptEvent
from loopgate.events import Meta, SessionRegistered
from loopgate.store.codec import (
    GENESIS_HASH,
    Row,
    chain_hash,
    decode_row,
    encode_event,
    encode_meta,
    row_hash,
)

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
EVENT = SessionRegistered(session_id="s1", client_id="agent", telegram_id=42, registered_at=T0)
META = Meta(actor="telegram:42", tenant="alice", correlation_id="http-1")
FIELDS: dict[str, Any] = {
    "position": 7,
    "stream": "session-s1",
    "version": 2,
    "type": "session.registered",
    "data": encode_event(EVENT),
    "meta": encode_meta(META),
    "recorded_at": T0,
}


def digest(prev_hash: str = GENESIS_HASH, **changes: Any) -> str:
    return chain_hash(prev_hash, **(FIELDS | changes))


def row(**changes: Any) -> Row:
    """A stored row whose hash is right for its (possibly corrupt) columns."""
    fields = FIELDS | changes
    return Row(**fields, prev_hash=GENESIS_HASH, hash=chain_hash(GENESIS_HASH, **fields))


# --- chain_hash ---------------------------------------------------------------


def test_hashes_the_same_row_to_the_same_sha256_hex() -> None:
    assert digest() == digest()
    assert len(digest()) == 64
    assert int(digest(), 16) >= 0


def test_chains_each_hash_to_the_previous_one() -> None:
    assert digest("a" * 64) != digest("b" * 64)


@pytest.mark.parametrize(
    "change",
    [
        {"position": 8},
        {"stream": "session-s2"},
        {"version": 3},
        {"type": "session.deactivated"},
        {"data": encode_event(msgspec.structs.replace(EVENT, telegram_id=43))},
        {"meta": encode_meta(Meta(actor="telegram:43", tenant="alice"))},
        {"recorded_at": T0 + timedelta(microseconds=1)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_covers_every_column_a_reader_relies_on(change: dict[str, Any]) -> None:
    assert digest(**change) != digest()


@pytest.mark.parametrize(
    ("written", "read_back"),
    [
        ('{"n":1e3}', '{"n":1000}'),
        ('{"n":1000.0}', '{"n":1000}'),
        ('{"n":1e23}', '{"n":100000000000000000000000}'),
        ('{"n":-0.0}', '{"n":0.0}'),
        ('{"n":1e-7}', '{"n":0.0000001}'),
        ('{"a":1,"b":{"y":2,"x":[1.0,2.5]}}', '{"b": {"x": [1, 2.5], "y": 2}, "a": 1}'),
    ],
    ids=["exponent", "integral float", "beyond 2**53", "negative zero", "small", "key order"],
)
def test_hashes_what_jsonb_hands_back_like_what_was_written(written: str, read_back: str) -> None:
    """Postgres JSONB reorders keys and rewrites numbers; the hash must not notice."""
    assert digest(data=written) == digest(data=read_back)
    assert digest(meta=written) == digest(meta=read_back)


@pytest.mark.parametrize(
    ("one", "other"),
    [('{"n":1.5}', '{"n":1}'), ('{"n":"1"}', '{"n":1}'), ('{"n":[1,2]}', '{"n":[2,1]}')],
)
def test_still_tells_different_values_apart(one: str, other: str) -> None:
    assert digest(data=one) != digest(data=other)


def test_recomputes_a_rows_own_hash() -> None:
    stored = row()
    assert row_hash(stored) == stored.hash
    tampered = msgspec.structs.replace(
        stored, data=encode_event(msgspec.structs.replace(EVENT, client_id="evil"))
    )
    assert row_hash(tampered) != tampered.hash


# --- decode_row ---------------------------------------------------------------


def test_decodes_a_row_into_the_event_it_stored() -> None:
    stored = row()

    record = decode_row(stored)

    assert (record.event, record.meta, record.type) == (EVENT, META, "session.registered")
    assert (record.position, record.stream, record.version) == (7, "session-s1", 2)
    assert (record.recorded_at, record.prev_hash, record.hash) == (T0, GENESIS_HASH, stored.hash)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "no.such"}, "unknown event type 'no.such'"),
        ({"data": '{"type":"session.registered"}'}, "missing required field"),
        ({"data": "not json"}, "malformed"),
        ({"type": "session.deactivated"}, "Invalid value 'session.registered'"),
        ({"meta": '{"actor": 42}'}, "Expected `str`"),
    ],
    ids=["unknown type", "missing fields", "not json", "type and data disagree", "bad meta"],
)
def test_refuses_to_decode_a_corrupt_row_naming_its_position(
    change: dict[str, str], reason: str
) -> None:
    corrupt = Row(**(FIELDS | change), prev_hash=GENESIS_HASH, hash=GENESIS_HASH)

    with pytest.raises(CorruptEvent) as caught:
        decode_row(corrupt)

    assert caught.value.position == 7
    assert "position 7" in str(caught.value)
    assert reason in str(caught.value)
    assert caught.value.code == "corrupt_event"
