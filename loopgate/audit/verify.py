"""Verification of the hash chain, in the live log or in an exported file.

Verification recomputes every row's hash from its own columns and checks each
row links to the one before: an edited row fails its own hash, a deleted row
leaves a gap in the positions, an inserted or reordered one breaks a link.

An export redacts secret fields and carries each one's digest, which is what
the chain hashes in their place (``store/codec.py``), so a redacted record is
recomputed all the same. The exception is a record marked ``legacy``: a row
holding a secret that was written before secrets were hashed by digest. Its
hash covers the secret in clear, so the file cannot recompute it; it is still
linked to its neighbours, and its position is reported as ``unchecked``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

import msgspec

from loopgate.audit.export import BATCH
from loopgate.events import SECRET_FIELDS
from loopgate.store.base import EventStore
from loopgate.store.codec import GENESIS_HASH, Row, row_hash


class Verification(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking a chain: ``broken_at`` is None when every link holds."""

    events: int
    head: str
    last_position: int
    broken_at: int | None = None
    reason: str | None = None
    unchecked: tuple[int, ...] = ()
    """Positions of ``legacy`` export records: linked, but their hash not recomputed."""

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def _mismatch(row: Row, digests: dict[str, str] | None) -> str | None:
    """Why ``row`` does not match its hash; None when it does."""
    try:
        if row_hash(row, digests=digests) == row.hash:
            return None
        # A row holding a secret from before digests hashes it in clear; only
        # the live log (which has the secret) can check it that way.
        if digests is None and row.type in SECRET_FIELDS and row_hash(row, legacy=True) == row.hash:
            return None
    except msgspec.DecodeError as exc:
        return f"stored event is not valid JSON: {exc}"
    except ValueError as exc:
        return f"stored event does not match its digests: {exc}"
    return "the stored event does not match its hash"


class _Chain:
    """Links rows one by one; the first broken link is kept."""

    def __init__(self, gaps_allowed: bool) -> None:
        self.gaps_allowed = gaps_allowed
        self.events = 0
        self.last_position = 0
        self.head = GENESIS_HASH
        self.broken_at: int | None = None
        self.reason: str | None = None
        self.unchecked: list[int] = []

    def check(self, row: Row, digests: dict[str, str] | None = None, legacy: bool = False) -> bool:
        """Add ``row``; False once the chain is broken.

        ``digests`` stand for the redacted secrets of an exported row; a
        ``legacy`` one (redacted, hashed in clear) is linked but not recomputed.
        """
        expected = self.last_position + 1
        if row.position < expected:
            return self.fail(
                row.position, f"position {row.position} comes after {self.last_position}"
            )
        if row.position > expected and not self.gaps_allowed:
            return self.fail(expected, f"position {expected} is missing (next is {row.position})")
        linked = row.position == expected
        if linked and row.prev_hash != self.head:
            return self.fail(
                row.position, f"prev_hash does not match the hash of position {expected - 1}"
            )
        if legacy:
            if row.type not in SECRET_FIELDS or digests is None:
                return self.fail(row.position, "only a redacted secret can make a record legacy")
            self.unchecked.append(row.position)
        elif (mismatch := _mismatch(row, digests)) is not None:
            return self.fail(row.position, mismatch)
        self.events += 1
        self.last_position, self.head = row.position, row.hash
        return True

    def fail(self, position: int, reason: str) -> bool:
        self.broken_at, self.reason = position, reason
        return False

    def result(self) -> Verification:
        return Verification(
            events=self.events,
            head=self.head,
            last_position=self.last_position,
            broken_at=self.broken_at,
            reason=self.reason,
            unchecked=tuple(self.unchecked),
        )


async def verify_log(
    store: EventStore, progress: Callable[[int], None] | None = None, *, batch: int = BATCH
) -> Verification:
    """Recompute the whole chain; stops at the first broken position."""
    chain = _Chain(gaps_allowed=False)
    position = 0
    while rows := await store.read_rows(position, batch):
        for row in rows:
            if not chain.check(row):
                return chain.result()
        position = rows[-1].position
        if progress is not None:
            progress(chain.events)
    return chain.result()


class _FileRecord(msgspec.Struct, frozen=True):
    position: int
    recorded_at: datetime
    stream: str
    version: int
    type: str
    data: msgspec.Raw
    meta: msgspec.Raw
    prev_hash: str
    hash: str
    digests: dict[str, str] | None = None
    legacy: bool = False


def verify_export(lines: Iterable[bytes]) -> Verification:
    """Check an NDJSON export on its own: every record's hash, and every link it contains.

    A filtered export skips positions, so only records at consecutive
    positions are linked; a full export is checked link by link, as the log.
    """
    chain = _Chain(gaps_allowed=True)
    decoder = msgspec.json.Decoder(_FileRecord)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = decoder.decode(line)
        except msgspec.DecodeError as exc:
            chain.fail(chain.last_position + 1, f"line {number} is not an export record: {exc}")
            break
        row = Row(
            position=record.position,
            stream=record.stream,
            version=record.version,
            type=record.type,
            data=bytes(record.data).decode(),
            meta=bytes(record.meta).decode(),
            recorded_at=record.recorded_at,
            prev_hash=record.prev_hash,
            hash=record.hash,
        )
        if not chain.check(row, record.digests, record.legacy):
            break
    return chain.result()


async def live_hash(store: EventStore, position: int) -> str | None:
    """The hash the live log has at ``position`` (None if it has no such event)."""
    rows = await store.read_rows(position - 1, 1)
    return rows[0].hash if rows and rows[0].position == position else None
