"""The Telegram sender: posts new requests to their approvers, edits them once decided.

It follows the log from its checkpoint (``reactors/checkpoint.py``) and acts on:

* ``RequestCreated``: send the question with its buttons to every chat the
  request is routed to (``Teams.telegram_chats``: the linked accounts of the
  members its ``approvers`` name, and bare ``telegram:<id>`` selectors; a
  request made before routing goes to its session's ``telegram_id``), and
  append one ``RequestDelivered`` per chat (chat and message id). A failed
  send is retried with doubling waits, or after Telegram's ``retry_after``
  when it asks for more; after ``attempts`` tries, or at once when Telegram
  refuses for good (a chat that does not exist, a bot the user blocked), it
  appends ``DeliveryFailed`` for that chat. Request creation never waits for
  any of this.
* ``VoteCast``: edit every message that shows the request, in every chat, to
  show the votes so far (``1 of 2 approvals — alice ✅``); the buttons stay.
* ``RequestEscalated``: deliver the request, as above, to every chat its
  approvers name now (the step's approvers were just added) that it was not
  delivered to yet.
* ``ReminderSent``, ``ExpiryWarned``: reply to the request's message in every
  chat that shows it, with a short reminder or the time it expires
  (``nudges.py``). Redone after a crash, a reminder may be sent twice.
* ``ResponseReceived``, ``RequestCancelled``, ``RequestExpired``: edit every
  message that shows the request, in every chat, to say who decided what and
  when (and the votes, when there were several), and drop its buttons.

A request's edits take turns and each shows the request as it is when its
turn comes, so a vote's edit that runs late never undoes the outcome's.

Each event is handled in its own task, so one slow chat does not hold up the
others. Exactly once, across restarts and processes: one process holds the
``telegram`` lease; a delivery first checks the request's stream, so an event
handled again after a restart (the checkpoint is saved behind the work still
in flight) sends nothing twice to a chat, and an edit redone is answered "not modified".
The one gap left: a crash between Telegram accepting a message and the
``RequestDelivered`` append sends that message again after the restart.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
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
from loopgate.channels.telegram.nudges import expiry_warning_text, reminder_text
from loopgate.domain import request as request_domain
from loopgate.events import (
    DeliveryFailed,
    ExpiryWarned,
    RecordedEvent,
    ReminderSent,
    RequestCancelled,
    RequestCreated,
    RequestDelivered,
    RequestEscalated,
    RequestExpired,
    ResponseReceived,
    VoteCast,
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
        # One per request being edited, gone with the last edit that holds it.
        self._editing: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        match record.event:
            case RequestCreated():
                return self._deliver(record)
            case RequestEscalated(request_id=rid):
                return self._deliver_escalated(rid)
            case ReminderSent(request_id=rid):
                return self._nudge(rid, reminder_text)
            case ExpiryWarned(request_id=rid):
                return self._nudge(rid, expiry_warning_text)
            case (
                VoteCast(request_id=rid)
                | ResponseReceived(request_id=rid)
                | RequestCancelled(request_id=rid)
                | RequestExpired(request_id=rid)
            ):
                return self._show_state(rid)
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
        await self._deliver_to_new(
            created.request_id, await self._chats_of(record.meta.tenant, created)
        )

    async def _deliver_escalated(self, request_id: str) -> None:
        """Show the request to the approvers an escalation step added (they are in the view now)."""
        view = await self._desk.requests.find_request(request_id)
        approvers = await self._desk.requests.approvers_of(view)
        await self._deliver_to_new(
            request_id, await self._desk.teams.telegram_chats(view.tenant, approvers)
        )

    async def _deliver_to_new(self, request_id: str, chats: list[int]) -> None:
        """Deliver to those of ``chats`` that were not delivered to (or given up on) yet."""
        if not chats:
            return
        chats = await self._still_to_deliver(request_id, chats)
        if not chats:
            return
        view = await self._desk.requests.find_request(request_id)
        # The sends run side by side; their appends to the request's stream
        # take turns, so none of them runs out of retries on a stale version.
        recording = asyncio.Lock()
        await asyncio.gather(*(self._deliver_to(chat, view, recording) for chat in chats))

    async def _chats_of(self, tenant: str, created: RequestCreated) -> list[int]:
        if not created.approvers:  # made before routing: its session's operator, as then
            chat_id = await self._desk.sessions.telegram_operator(tenant, created.session_id)
            return [] if chat_id is None else [chat_id]
        return await self._desk.teams.telegram_chats(tenant, created.approvers)

    async def _deliver_to(self, chat_id: int, view: RequestView, recording: asyncio.Lock) -> None:
        try:
            message = await self._retrying(
                lambda: self._send(chat_id, view),
                "send",
                request_id=view.request_id,
                chat_id=chat_id,
            )
        except GaveUp as gave_up:
            log.warning(
                "telegram delivery failed",
                request_id=view.request_id,
                chat_id=chat_id,
                attempts=gave_up.attempts,
                error=str(gave_up.error),
            )
            async with recording:
                await self._desk.requests.record_delivery_failure(
                    view.request_id,
                    view.tenant,
                    channel="telegram",
                    error=str(gave_up.error),
                    attempts=gave_up.attempts,
                    chat_id=chat_id,
                )
            return
        async with recording:
            await self._desk.record_delivery(view, message)
        log.info("telegram request sent", request_id=view.request_id, chat_id=chat_id)

    async def _send(self, chat_id: int, view: RequestView) -> Message:
        try:
            return await self._desk.send_request(chat_id, view)
        except Exception:
            self._desk.requests.metrics.delivery_failed("telegram")
            raise

    async def _still_to_deliver(self, request_id: str, chats: list[int]) -> list[int]:
        """The chats still owed the message: none once the request is decided.

        A chat is done once the message was shown there or given up on (a
        ``DeliveryFailed`` without a chat is from before routing: the only chat).
        """
        history = [r.event for r in await self._store.read_stream(f"request-{request_id}")]
        if request_domain.is_terminal(request_domain.fold(history)):
            return []
        done: set[int | None] = {
            event.chat_id
            for event in history
            if isinstance(event, RequestDelivered | DeliveryFailed) and event.channel == "telegram"
        }
        if None in done:
            return []
        return [chat for chat in chats if chat not in done]

    async def _show_state(self, request_id: str) -> None:
        lock = self._editing.setdefault(request_id, asyncio.Lock())
        async with lock:
            messages = await self._desk.messages_of(request_id)
            if not messages:
                return
            view = await self._desk.requests.find_request(request_id)
            await asyncio.gather(*(self._edit(chat, message, view) for chat, message in messages))

    async def _nudge(self, request_id: str, text_of: Callable[[RequestView], str]) -> None:
        """Reply to the request's message in every chat that shows it, while it is open."""
        messages = await self._desk.messages_of(request_id)
        if not messages:
            return
        view = await self._desk.requests.find_request(request_id)
        if view.final:
            return  # decided meanwhile: its messages say so already
        text = text_of(view)
        # One note per chat, under its latest message (``/pending`` may have shown it again).
        latest = dict(messages)
        await asyncio.gather(
            *(self._reply(chat, message, text, view) for chat, message in latest.items())
        )

    async def _reply(self, chat_id: int, message_id: int, text: str, view: RequestView) -> None:
        try:
            await self._retrying(
                functools.partial(self._desk.reply_to, chat_id, message_id, text),
                "reply",
                request_id=view.request_id,
            )
        except GaveUp as gave_up:
            log.warning(
                "telegram reminder not sent",
                request_id=view.request_id,
                chat_id=chat_id,
                error=str(gave_up.error),
            )
            return
        log.info("telegram reminder sent", request_id=view.request_id, chat_id=chat_id)

    async def _edit(self, chat_id: int, message_id: int, view: RequestView) -> None:
        try:
            await self._retrying(
                functools.partial(self._desk.show_state, chat_id, message_id, view),
                "edit",
                request_id=view.request_id,
            )
        except GaveUp as gave_up:
            log.warning(
                "telegram message not edited",
                request_id=view.request_id,
                chat_id=chat_id,
                message_id=message_id,
                error=str(gave_up.error),
            )
