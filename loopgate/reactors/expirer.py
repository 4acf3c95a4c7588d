"""The expirer: appends ``RequestExpired`` when a request's deadline passes.

At start it arms a timer for every open request with a deadline, read from
the ``requests`` projection, so expiry survives restarts; after that the hub
tells it about new requests and about requests that were decided. A timer
runs the ``expire`` command with the version it read, so a human answer that
commits a millisecond earlier wins and the expiry becomes a no-op, never a
second decision.

With several server processes only one expirer may run: it arms and fires
timers only while it holds its lease (``reactors/lease.py``). On acquiring it
re-arms from the projection, as at a start; on losing it, it disarms them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

import structlog

from loopgate.commands.requests import Requests
from loopgate.errors import DomainError, NotFound
from loopgate.events import (
    RecordedEvent,
    RequestCancelled,
    RequestCreated,
    RequestExpired,
    ResponseReceived,
)
from loopgate.hub import Hub
from loopgate.reactors.lease import AlwaysHeld, Lease

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0


class Expirer:
    def __init__(self, requests: Requests, hub: Hub, lease: Lease | None = None) -> None:
        self._requests = requests
        self._hub = hub
        self._lease: Lease = lease if lease is not None else AlwaysHeld()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Follow the hub and take part in the lease; call after the hub started.

        Returns once the lease was tried: an uncontested expirer is armed by then.
        """
        self._hub.add_listener(self._on_event)
        await self._lease.start(self._rearm, self._disarm_all)

    async def _rearm(self) -> None:
        """Arm every open request (the lease was just acquired); hub events are already armed."""
        rows = await self._requests.store.fetch(
            "SELECT request_id, tenant, expires_at FROM requests"
            " WHERE status IN ('pending', 'delivered') AND expires_at IS NOT NULL",
        )
        for row in rows:
            expires_at = row["expires_at"]
            if isinstance(expires_at, str):
                expires_at = datetime.fromisoformat(expires_at)
            self.arm(row["request_id"], row["tenant"], expires_at)
        log.info("expirer armed", open_requests=len(rows))

    async def stop(self) -> None:
        self._hub.remove_listener(self._on_event)
        await self._lease.stop()
        self._disarm_all()
        for task in list(self._running):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _disarm_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    @property
    def held(self) -> bool:
        """Whether this process holds the expirer lease (and so runs the timers)."""
        return self._lease.held

    @property
    def armed(self) -> int:
        return len(self._timers)

    def arm(self, request_id: str, tenant: str, expires_at: datetime) -> None:
        """Set a timer for ``request_id``; a no-op unless this process holds the lease."""
        if not self._lease.held:
            return
        delay = max(0.0, (expires_at - self._requests.clock()).total_seconds())
        self.disarm(request_id)
        loop = asyncio.get_running_loop()
        self._timers[request_id] = loop.call_later(
            delay, self._fire, request_id, tenant, expires_at
        )

    def disarm(self, request_id: str) -> None:
        timer = self._timers.pop(request_id, None)
        if timer is not None:
            timer.cancel()

    def _on_event(self, record: RecordedEvent) -> None:
        match record.event:
            case RequestCreated(request_id=rid, expires_at=expires_at) if expires_at is not None:
                self.arm(rid, record.meta.tenant, expires_at)
            case (
                ResponseReceived(request_id=rid)
                | RequestCancelled(request_id=rid)
                | RequestExpired(request_id=rid)
            ):
                self.disarm(rid)

    def _fire(self, request_id: str, tenant: str, expires_at: datetime) -> None:
        self._timers.pop(request_id, None)
        task = asyncio.create_task(self._expire(request_id, tenant, expires_at))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _expire(self, request_id: str, tenant: str, expires_at: datetime) -> None:
        try:
            expired = await self._requests.expire(request_id, tenant)
        except DomainError as exc:
            if exc.code == "not_due":  # the timer fired a hair early; try again on time
                self.arm(request_id, tenant, expires_at)
                return
            log.error("expiry refused", request_id=request_id, code=exc.code, error=exc.message)
        except NotFound:
            log.error("expiry of a request that does not exist", request_id=request_id)
        except Exception as exc:
            log.error("expiry failed, retrying", request_id=request_id, error=str(exc))
            await asyncio.sleep(RETRY_SECONDS)
            self.arm(request_id, tenant, expires_at)
        else:
            if expired:
                log.info("request expired", request_id=request_id)
