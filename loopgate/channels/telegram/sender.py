"""The Telegram sender: posts new requests to their operator, edits them once decided.

It follows the log from its checkpoint (``reactors/checkpoint.py``) and acts on:

* ``RequestCreated`` for a session with a ``telegram_id``: send the question
  with its buttons and append ``RequestDelivered`` (chat and message id). A
  failed send is retried with doubling waits, or after Telegram's
  ``retry_after`` when it asks for more; after ``attempts`` tries, or at once
  when Telegram refuses for good (a chat that does not exist, a bot the user
  blocked), it appends ``DeliveryFailed``. Request creation never waits for
  any of this.
* ``ResponseReceived``, ``RequestCancelled``, ``RequestExpired``: edit every
  message that shows the request to say who decided what and when, and drop
  its buttons.

Each event is handled in its own task, so one slow chat does not hold up the
others. Exactly once, across restarts and processes: one process holds the
``telegram`` lease; a delivery first checks the request's stream, so an event
handled again after a restart (the checkpoint is saved behind the work still
in flight) sends nothing twice, and an edit redone is answered "not modified".
The one gap left: a crash between Telegram accepting a message and the
``RequestDelivered`` append sends that message again after the restart.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import aiohttp
import structlog
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import Message

from loopgate.channels.telegram.desk import OperatorDesk
from loopgate.domain import request as request_domain
from loopgate.events import (
    DeliveryFailed,
    RecordedEvent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestExpired,
    ResponseReceived,
)
from loopgate.reactors.follower import LogFollower
from loopgate.reactors.lease import Lease
from loopgate.views import RequestView

log = structlog.get_logger(__name__)

T = TypeVar("T")

NAME = "telegram-sender"
CONCURRENT_SENDS = 8
_PERMANENT = (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)


class GaveUp(Exception):
    """A Telegram call failed ``attempts`` times, or for a reason retrying cannot fix."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(str(error))
        self.error, self.attempts = error, attempts


class TelegramSender(LogFollower):
    name = NAME

    def __init__(
        self,
        desk: OperatorDesk,
        lease: Lease,
        *,
        attempts: int = 5,
        retry_seconds: float = 2.0,
    ) -> None:
        super().__init__(desk.store, desk.requests.clock, lease)
        self._desk = desk
        self._attempts = attempts
        self._retry_seconds = retry_seconds
        self._sending = asyncio.Semaphore(CONCURRENT_SENDS)

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        match record.event:
            case RequestCreated():
                return self._deliver(record)
            case (
                ResponseReceived(request_id=rid)
                | RequestCancelled(request_id=rid)
                | RequestExpired(request_id=rid)
            ):
                return self._show_outcome(rid)
            case _:
                return None

    async def _retrying(self, call: Callable[[], Awaitable[T]], what: str, **context: Any) -> T:
        """``call()``, retried on errors retrying can fix; raises ``GaveUp`` otherwise."""
        wait = self._retry_seconds
        for attempt in range(1, self._attempts + 1):
            try:
                async with self._sending:
                    return await call()
            except _PERMANENT as exc:
                raise GaveUp(exc, attempt) from exc
            except TelegramRetryAfter as exc:
                error: BaseException = exc
                delay = max(float(exc.retry_after), wait)
            except (TelegramAPIError, aiohttp.ClientError, TimeoutError) as exc:
                error, delay = exc, wait
            if attempt == self._attempts:
                raise GaveUp(error, attempt) from error
            log.info(
                f"telegram {what} failed, retrying",
                attempt=attempt,
                error=str(error),
                retry_in=delay,
                **context,
            )
            await asyncio.sleep(delay)
            wait *= 2
        raise AssertionError("unreachable")

    async def _deliver(self, record: RecordedEvent) -> None:
        created = record.event
        assert isinstance(created, RequestCreated)
        operator = self._desk.sessions.telegram_operator
        chat_id = await operator(record.meta.tenant, created.session_id)
        if chat_id is None or not await self._still_to_deliver(created.request_id):
            return
        view = await self._desk.requests.find_request(created.request_id)
        try:
            message = await self._retrying(
                lambda: self._send(chat_id, view),
                "send",
                request_id=created.request_id,
            )
        except GaveUp as gave_up:
            log.warning(
                "telegram delivery failed",
                request_id=created.request_id,
                chat_id=chat_id,
                attempts=gave_up.attempts,
                error=str(gave_up.error),
            )
            await self._desk.requests.record_delivery_failure(
                created.request_id,
                record.meta.tenant,
                channel="telegram",
                error=str(gave_up.error),
                attempts=gave_up.attempts,
            )
            return
        await self._desk.record_delivery(view, message)
        log.info("telegram request sent", request_id=created.request_id, chat_id=chat_id)

    async def _send(self, chat_id: int, view: RequestView) -> Message:
        try:
            return await self._desk.send_request(chat_id, view)
        except Exception:
            self._desk.requests.metrics.delivery_failed("telegram")
            raise

    async def _still_to_deliver(self, request_id: str) -> bool:
        """False once the request is decided, shown on Telegram, or given up on."""
        history = [r.event for r in await self._store.read_stream(f"request-{request_id}")]
        if request_domain.is_terminal(request_domain.fold(history)):
            return False
        return not any(
            isinstance(event, RequestDelivered | DeliveryFailed) and event.channel == "telegram"
            for event in history
        )

    async def _show_outcome(self, request_id: str) -> None:
        messages = await self._desk.messages_of(request_id)
        if not messages:
            return
        view = await self._desk.requests.find_request(request_id)
        for chat_id, message_id in messages:
            try:
                await self._retrying(
                    functools.partial(self._desk.show_outcome, chat_id, message_id, view),
                    "edit",
                    request_id=request_id,
                )
            except GaveUp as gave_up:
                log.warning(
                    "telegram message not edited",
                    request_id=request_id,
                    message_id=message_id,
                    error=str(gave_up.error),
                )
