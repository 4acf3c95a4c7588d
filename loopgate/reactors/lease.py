"""Leases: a reactor that must run in exactly one process holds one.

On Postgres the lease is a session-level advisory lock taken on a dedicated
connection. Every process tries ``pg_try_advisory_lock`` every
``LEASE_RETRY_SECONDS``; one wins. Postgres releases a session lock when its
connection ends, so when the holder dies (even ``kill -9``) its backend exits,
the lock is free, and another process takes it on its next try, within about
a second. While holding, the lease checks its connection every
``LEASE_CHECK_SECONDS``; a lost connection means a lost lease: the reactor is
told to stand down and the lease goes back to trying.

Two holders can overlap for at most one check interval, when a holder's
connection is cut while its process keeps running. The expirer tolerates that:
its command carries the expected version, so a second expiry is a no-op.

SQLite has one process per database file, so its lease is simply always held.
Operators can see the holder in ``pg_stat_activity`` (application_name
``loopgate-lease-<name>``) joined to ``pg_locks``, and in the log line
``"<name> lease acquired"`` with the process id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from typing import Protocol

import asyncpg
import structlog

from loopgate.store.base import EventStore
from loopgate.store.postgres import APPEND_LOCK, PostgresStore

log = structlog.get_logger(__name__)

EXPIRER_LEASE = APPEND_LOCK + 2  # after APPEND_LOCK and MIGRATE_LOCK
TELEGRAM_LEASE = APPEND_LOCK + 3
WEBHOOK_LEASE = APPEND_LOCK + 4
SCHEDULER_LEASE = APPEND_LOCK + 5
CHANNEL_LEASES = {"telegram": TELEGRAM_LEASE, "slack": APPEND_LOCK + 6, "email": APPEND_LOCK + 7}
"""Each channel's sender holds a lease of its own: one process sends for each channel."""
LEASE_RETRY_SECONDS = 1.0
LEASE_CHECK_SECONDS = 2.0
_CONNECT_TIMEOUT = 5.0

OnAcquired = Callable[[], Awaitable[None]]
OnLost = Callable[[], None]


def lease_name(name: str) -> str:
    """The application_name of a lease's connection."""
    return f"loopgate-lease-{name}"


class Lease(Protocol):
    """Calls ``on_acquired`` when this process becomes the holder, ``on_lost`` when it stops."""

    @property
    def held(self) -> bool: ...

    async def start(self, on_acquired: OnAcquired, on_lost: OnLost) -> None:
        """Begin; returns after the first attempt, so an uncontested lease is held by then."""

    async def stop(self) -> None:
        """Release the lease (if held) and stop trying; ``on_lost`` is not called."""


class AlwaysHeld:
    """The lease of a single-process store: held from ``start`` to ``stop``."""

    def __init__(self, name: str = "expirer") -> None:
        self.name = name
        self._held = False

    @property
    def held(self) -> bool:
        return self._held

    async def start(self, on_acquired: OnAcquired, on_lost: OnLost) -> None:
        self._held = True
        log.info(f"{self.name} lease acquired", pid=os.getpid(), backend="single-process")
        await on_acquired()

    async def stop(self) -> None:
        self._held = False


class AdvisoryLease:
    """A Postgres session-level advisory lock on its own connection."""

    def __init__(self, dsn: str, *, key: int = EXPIRER_LEASE, name: str = "expirer") -> None:
        self.dsn, self.key, self.name = dsn, key, name
        self._held = False
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._held

    async def start(self, on_acquired: OnAcquired, on_lost: OnLost) -> None:
        attempted = asyncio.Event()
        self._task = asyncio.create_task(
            self._run(on_acquired, on_lost, attempted), name=lease_name(self.name)
        )
        await attempted.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(
        self, on_acquired: OnAcquired, on_lost: OnLost, attempted: asyncio.Event
    ) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn,
                    timeout=_CONNECT_TIMEOUT,
                    server_settings={"application_name": lease_name(self.name)},
                )
                dropped = asyncio.Event()
                conn.add_termination_listener(lambda _c, dropped=dropped: dropped.set())
                while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
                    attempted.set()
                    await asyncio.sleep(LEASE_RETRY_SECONDS)
                self._held = True
                log.info(
                    f"{self.name} lease acquired",
                    pid=os.getpid(),
                    backend_pid=conn.get_server_pid(),
                )
                await on_acquired()
                attempted.set()
                while not dropped.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(dropped.wait(), LEASE_CHECK_SECONDS)
                    if not dropped.is_set():
                        await asyncio.wait_for(conn.execute("SELECT 1"), LEASE_CHECK_SECONDS)
                raise ConnectionError("lease connection closed")
            except asyncio.CancelledError:
                self._held = False
                if conn is not None and not conn.is_closed():
                    # Closing the session releases the lock; terminate if that hangs.
                    try:
                        await conn.close(timeout=2)
                    except Exception:
                        conn.terminate()
                raise
            except Exception as exc:
                if self._held:
                    self._held = False
                    on_lost()
                    log.warning(f"{self.name} lease lost", pid=os.getpid(), error=str(exc))
                else:
                    log.warning(f"{self.name} lease unavailable, retrying", error=str(exc))
                attempted.set()
            if conn is not None and not conn.is_closed():
                conn.terminate()
            await asyncio.sleep(LEASE_RETRY_SECONDS)


def lease_for(store: EventStore, name: str = "expirer", key: int = EXPIRER_LEASE) -> Lease:
    """The lease that fits ``store``: an advisory lock on Postgres, always held otherwise."""
    if isinstance(store, PostgresStore):
        return AdvisoryLease(store.dsn, key=key, name=name)
    return AlwaysHeld(name)
