"""The scheduler: reminders, the expiry warning and escalation steps, each on time and once.

A request may ask to be reminded every ``remind_every_seconds`` (reminder N
is due ``N * remind_every_seconds`` after creation), to warn its approvers
``warn_before_expiry_seconds`` before it expires, and to escalate: step K,
``escalation[K].after_seconds`` after creation, adds its approvers to the
request's routing. The scheduler arms a timer for each of these that has not
happened yet; a timer runs the matching ``Requests`` command (``remind``,
``warn_expiry``, ``escalate``), whose event the Telegram sender turns into
messages.

Like the expirer (``reactors/expirer.py``) it runs timers only while it holds
its lease (``scheduler``), re-arms every open request from the ``requests``
projection when it acquires it (so a restart or a hand-over loses nothing),
and then follows the hub: a ``RequestCreated`` arms, a ``ReminderSent`` arms
the next reminder, and a decision disarms. Once across processes: the
commands are numbered (reminder N, step K) and the decider records each once,
so a timer that fires twice, here or in a process that held the lease a
moment earlier, appends nothing the second time. Nothing is due at or after
the deadline: such timers are never armed, and a command refused with
``request_expired`` is simply done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Literal

import msgspec
import structlog

from loopgate.commands.requests import Requests
from loopgate.errors import DomainError, NotFound
from loopgate.events import (
    EscalationStep,
    ExpiryWarned,
    RecordedEvent,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestEscalated,
    RequestExpired,
    ResponseReceived,
)
from loopgate.hub import Hub
from loopgate.reactors.lease import AlwaysHeld, Lease
from loopgate.views import request_view

log = structlog.get_logger(__name__)

RETRY_SECONDS = 1.0

Kind = Literal["remind", "warn", "escalate"]
Key = tuple[Kind, int]
"""What a timer does: ("remind", N), ("warn", 0) or ("escalate", K)."""


class Schedule(msgspec.Struct, frozen=True, kw_only=True):
    """What a request asked for, as far as timers go."""

    request_id: str
    tenant: str
    created_at: datetime
    expires_at: datetime | None
    remind_every_seconds: int | None
    warn_before_expiry_seconds: int | None
    escalation: tuple[EscalationStep, ...]

    @property
    def empty(self) -> bool:
        return (
            self.remind_every_seconds is None
            and self.warn_before_expiry_seconds is None
            and not self.escalation
        )

    def reminder_due(self, number: int) -> datetime | None:
        if self.remind_every_seconds is None:
            return None
        return self._before_expiry(
            self.created_at + timedelta(seconds=number * self.remind_every_seconds)
        )

    def warning_due(self) -> datetime | None:
        if self.expires_at is None or self.warn_before_expiry_seconds is None:
            return None
        return self._before_expiry(
            self.expires_at - timedelta(seconds=self.warn_before_expiry_seconds)
        )

    def step_due(self, step: int) -> datetime | None:
        after = self.escalation[step].after_seconds
        return self._before_expiry(self.created_at + timedelta(seconds=after))

    def _before_expiry(self, due: datetime) -> datetime | None:
        """``due``, or None when the request will have expired by then."""
        return None if self.expires_at is not None and due >= self.expires_at else due


class Scheduler:
    def __init__(self, requests: Requests, hub: Hub, lease: Lease | None = None) -> None:
        self._requests = requests
        self._hub = hub
        self._lease: Lease = lease if lease is not None else AlwaysHeld("scheduler")
        self._schedules: dict[str, Schedule] = {}
        self._timers: dict[str, dict[Key, asyncio.TimerHandle]] = {}
        self._running: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Follow the hub and take part in the lease; call after the hub started."""
        self._hub.add_listener(self._on_event)
        await self._lease.start(self.rearm, self._disarm_all)

    async def stop(self) -> None:
        self._hub.remove_listener(self._on_event)
        await self._lease.stop()
        self._disarm_all()
        for task in list(self._running):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def held(self) -> bool:
        """Whether this process holds the scheduler lease (and so runs the timers)."""
        return self._lease.held

    @property
    def armed(self) -> int:
        """Timers armed now, over every request."""
        return sum(len(timers) for timers in self._timers.values())

    def armed_for(self, request_id: str) -> set[Key]:
        return set(self._timers.get(request_id, {}))

    async def rearm(self) -> None:
        """Arm what every open request still has coming, from the projection.

        Run when the lease is acquired; what is already armed is armed again
        with the same due time, so running it twice changes nothing.
        """
        rows = await self._requests.store.fetch(
            "SELECT * FROM requests WHERE status IN ('pending', 'delivered')"
            " AND (remind_every_seconds IS NOT NULL OR warn_before_expiry_seconds IS NOT NULL"
            " OR escalation <> '[]')",
        )
        for view in map(request_view, rows):
            schedule = Schedule(
                request_id=view.request_id,
                tenant=view.tenant,
                created_at=view.created_at,
                expires_at=view.expires_at,
                remind_every_seconds=view.remind_every_seconds,
                warn_before_expiry_seconds=view.warn_before_expiry_seconds,
                escalation=view.escalation,
            )
            fired = {e.step for e in view.escalations}
            self._plan(
                schedule, reminders=view.reminders, warned=view.warned_at is not None, fired=fired
            )
        log.info("scheduler armed", open_requests=len(rows), timers=self.armed)

    def _plan(self, schedule: Schedule, *, reminders: int, warned: bool, fired: set[int]) -> None:
        """Arm everything ``schedule`` has still to come, given what already happened."""
        if not self._lease.held or schedule.empty:
            return
        self._schedules[schedule.request_id] = schedule
        self._arm(schedule, ("remind", reminders + 1), schedule.reminder_due(reminders + 1))
        if not warned:
            self._arm(schedule, ("warn", 0), schedule.warning_due())
        for step in range(len(schedule.escalation)):
            if step not in fired:
                self._arm(schedule, ("escalate", step), schedule.step_due(step))

    def _arm(self, schedule: Schedule, key: Key, due: datetime | None) -> None:
        if due is None or not self._lease.held:
            return
        timers = self._timers.setdefault(schedule.request_id, {})
        old = timers.pop(key, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, (due - self._requests.clock()).total_seconds())
        timers[key] = asyncio.get_running_loop().call_later(delay, self._fire, schedule, key, due)

    def _done(self, request_id: str, key: Key) -> None:
        timers = self._timers.get(request_id, {})
        timer = timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def disarm(self, request_id: str) -> None:
        self._schedules.pop(request_id, None)
        for timer in self._timers.pop(request_id, {}).values():
            timer.cancel()

    def _disarm_all(self) -> None:
        for request_id in list(self._timers):
            self.disarm(request_id)
        self._schedules.clear()

    def _on_event(self, record: RecordedEvent) -> None:
        match record.event:
            case RequestCreated() as created:
                schedule = Schedule(
                    request_id=created.request_id,
                    tenant=record.meta.tenant,
                    created_at=created.created_at,
                    expires_at=created.expires_at,
                    remind_every_seconds=created.remind_every_seconds,
                    warn_before_expiry_seconds=created.warn_before_expiry_seconds,
                    escalation=created.escalation,
                )
                self._plan(schedule, reminders=0, warned=False, fired=set())
            case ReminderSent(request_id=rid, number=number) if number is not None:
                self._done(rid, ("remind", number))
                known = self._schedules.get(rid)
                if known is not None:
                    self._arm(known, ("remind", number + 1), known.reminder_due(number + 1))
            case ExpiryWarned(request_id=rid):
                self._done(rid, ("warn", 0))
            case RequestEscalated(request_id=rid, step=step):
                self._done(rid, ("escalate", step))
            case (
                ResponseReceived(request_id=rid)
                | RequestCancelled(request_id=rid)
                | RequestExpired(request_id=rid)
            ):
                self.disarm(rid)

    def _fire(self, schedule: Schedule, key: Key, due: datetime) -> None:
        self._done(schedule.request_id, key)
        task = asyncio.create_task(self._run(schedule, key, due))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def _command(
        self, schedule: Schedule, key: Key
    ) -> Callable[[], Awaitable[list[RecordedEvent]]]:
        rid, tenant = schedule.request_id, schedule.tenant
        match key:
            case ("remind", number):
                return lambda: self._requests.remind(rid, tenant, number)
            case ("warn", _):
                return lambda: self._requests.warn_expiry(rid, tenant)
            case ("escalate", step):
                return lambda: self._requests.escalate(rid, tenant, step)
        raise AssertionError(f"unknown timer {key!r}")

    async def _run(self, schedule: Schedule, key: Key, due: datetime) -> None:
        rid = schedule.request_id
        try:
            recorded = await self._command(schedule, key)()
        except DomainError as exc:
            if exc.code == "not_due":  # the timer fired a hair early; try again on time
                self._arm(schedule, key, due)
            elif exc.code != "request_expired":  # expired: nothing is due any more
                log.error("scheduled step refused", request_id=rid, timer=key[0], code=exc.code)
        except NotFound:
            log.error("scheduled step for a request that does not exist", request_id=rid)
        except Exception as exc:
            log.error(
                "scheduled step failed, retrying", request_id=rid, timer=key[0], error=str(exc)
            )
            await asyncio.sleep(RETRY_SECONDS)
            self._arm(schedule, key, due)
        else:
            for record in recorded:
                _log_fired(record)


def _log_fired(record: RecordedEvent) -> None:
    match record.event:
        case ReminderSent(request_id=rid, number=number):
            log.info("reminder sent", request_id=rid, number=number)
        case ExpiryWarned(request_id=rid, expires_at=expires_at):
            log.info("expiry warned", request_id=rid, expires_at=expires_at.isoformat())
        case RequestEscalated(request_id=rid, step=step, approvers=approvers):
            log.info("request escalated", request_id=rid, step=step, approvers=list(approvers))
