"""Reactor checkpoints: how far a reactor has acted on the log, kept in the store.

A reactor that acts on events concurrently (a slow Telegram send must not hold
up the next one) cannot simply store the last position it read: an earlier
event may still be in flight. :class:`Progress` tracks the positions in flight
and says which position is *safe*: everything up to it is done. After a crash
or a lease hand-over the reactor resumes after the safe position, so work in
flight is redone, never skipped; the reactor makes redoing it harmless.
"""

from __future__ import annotations

from datetime import datetime

from loopgate.store.base import EventStore


class Checkpoint:
    """The stored position of one named reactor (table ``reactor_checkpoints``)."""

    def __init__(self, store: EventStore, name: str) -> None:
        self.store, self.name = store, name

    async def load(self) -> int | None:
        """The saved position, or None when this reactor never ran on this store."""
        rows = await self.store.fetch(
            "SELECT position FROM reactor_checkpoints WHERE name = ?", (self.name,)
        )
        return int(rows[0]["position"]) if rows else None

    async def save(self, position: int, now: datetime) -> None:
        await self.store.execute(
            "INSERT INTO reactor_checkpoints (name, position, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
            " updated_at = excluded.updated_at",
            (self.name, position, now),
        )


class Progress:
    """Positions read and positions still in flight; ``safe`` is where to resume after."""

    def __init__(self, position: int) -> None:
        self._read = position
        self._in_flight: set[int] = set()

    def read(self, position: int) -> None:
        self._read = position

    def begin(self, position: int) -> None:
        self._in_flight.add(position)

    def done(self, position: int) -> None:
        self._in_flight.discard(position)

    @property
    def last_read(self) -> int:
        return self._read

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def safe(self) -> int:
        """The last position with nothing at or before it still in flight."""
        return min(self._in_flight) - 1 if self._in_flight else self._read
