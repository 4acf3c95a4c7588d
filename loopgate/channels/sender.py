"""The channel sender: posts new requests to their approvers on one channel, keeps them current.

One :class:`ChannelSender` runs per channel (Telegram, Slack, email), each a
reactor with its own lease and checkpoint, over that channel's
:class:`~loopgate.channels.model.ChannelAdapter`. It follows the log and acts on:

* ``RequestCreated``: send the request to every target the adapter finds for
  its approvers (their linked accounts, bare selectors such as a Slack
  channel), and append one ``RequestDelivered`` per message. A failed send is
  retried with doubling waits, or after the wait the service asked for
  (``RetryLater.after``: Telegram's ``retry_after``, Slack's ``Retry-After``)
  when it is longer; after ``attempts`` tries, or at once when the service
  refuses for good (``Undeliverable``: no such chat, user or mailbox), it
  appends ``DeliveryFailed`` for that target. Request creation never waits
  for any of this.
* ``RequestEscalated``: deliver, as above, to every target its approvers name
  now (the step's approvers were just added) that it was not delivered to yet.
* ``VoteCast``, ``ResponseReceived``, ``RequestCancelled``, ``RequestExpired``:
  make every message that shows the request show it as it is now — the votes
  so far, or who decided what and when, its buttons gone (``show_state``).
* ``ReminderSent``, ``ExpiryWarned``: a note under the request's newest
  message to each target, while it is open (``nudge``). Redone after a
  crash, a note may be sent twice.

A request's edits take turns and each shows the request as it is when its
turn comes, so a vote's edit that runs late never undoes the outcome's.

Each event is handled in its own task, so one slow target does not hold up
the others. Exactly once, across restarts and processes: one process holds
the channel's lease; a delivery first checks the request's stream, so an
event handled again after a restart (the checkpoint is saved behind the work
still in flight) sends nothing twice to a target, and an edit redone shows
the same thing again. The one gap left: a crash between the service
accepting a message and the ``RequestDelivered`` append sends that message
again after the restart.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

import structlog

from loopgate.channels.model import (
    ChannelAdapter,
    Delivery,
    Nudge,
    RetryLater,
    Sent,
    Target,
    Undeliverable,
)
from loopgate.commands.requests import Requests
from loopgate.domain import request as request_domain
from loopgate.errors import AlreadyDecided, RequestClosed, StoreUnavailable
from loopgate.events import (
    Channel,
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

CONCURRENT_SENDS = 8
RECORD_ATTEMPTS = 3
RECORD_RETRY_SECONDS = 0.5


class GaveUp(Exception):
    """A channel call failed ``attempts`` times, or for a reason retrying cannot fix."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(str(error))
        self.error, self.attempts = error, attempts


def whom(channel: str, address: str) -> dict[str, Any]:
    """The event fields that name a target: Telegram's chat by number, as it always was."""
    if channel == "telegram":
        return {"chat_id": int(address)}
    return {"address": address}


async def record_sent(
    requests: Requests,
    channel: Channel,
    view: RequestView,
    sent: Sent,
    show_decided: Callable[[RequestView], Awaitable[None]],
) -> None:
    """Append ``RequestDelivered``; if the request was decided meanwhile, ``show_decided`` it."""
    delivery = sent.delivery
    for attempt in range(1, RECORD_ATTEMPTS + 1):
        try:
            await requests.mark_delivered(
                view.request_id,
                view.tenant,
                channel=channel,
                external_message_id=delivery.message_id,
                conversation=delivery.conversation,
                routed_by=delivery.routed_by,
                shown_text=sent.shown_text,
                shown_options=sent.shown_options,
                **whom(channel, delivery.address),
            )
            requests.metrics.delivered(channel)
            return
        except (AlreadyDecided, RequestClosed):
            await show_decided(await requests.find_request(view.request_id))
            return
        except StoreUnavailable as exc:
            if attempt == RECORD_ATTEMPTS:
                # The message exists but the log does not know it: it will not
                # be edited, nor an answer to it matched. Say so loudly.
                log.error(
                    f"{channel} message sent but not recorded",
                    request_id=view.request_id,
                    message_id=delivery.message_id,
                    error=str(exc),
                )
                raise
            await asyncio.sleep(RECORD_RETRY_SECONDS)


class ChannelSender(LogFollower):
    def __init__(
        self,
        adapter: ChannelAdapter,
        requests: Requests,
        lease: Lease,
        *,
        attempts: int = 5,
        retry_seconds: float = 2.0,
    ) -> None:
        self.channel = adapter.name
        self.name = f"{adapter.name}-sender"  # before the checkpoint is made under it
        super().__init__(requests.store, requests.clock, lease)
        self._adapter, self._requests = adapter, requests
        self._attempts = attempts
        self._retry_seconds = retry_seconds
        self._sending = asyncio.Semaphore(CONCURRENT_SENDS)
        # One per request being edited, gone with the last edit that holds it.
        self._editing: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def work_for(self, record: RecordedEvent) -> Coroutine[Any, Any, None] | None:
        match record.event:
            case RequestCreated(request_id=rid, approvers=approvers):
                return self._deliver(rid, approvers)
            case RequestEscalated(request_id=rid):
                return self._deliver(rid, None)
            case ReminderSent(request_id=rid):
                return self._nudge(rid, "reminder")
            case ExpiryWarned(request_id=rid):
                return self._nudge(rid, "expiry")
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
            except Exception as exc:
                verdict = (
                    exc
                    if isinstance(exc, RetryLater | Undeliverable)
                    else self._adapter.classify(exc)
                )
                if verdict is None:
                    raise
                if isinstance(verdict, Undeliverable):
                    raise GaveUp(exc, attempt) from exc
                error: BaseException = exc
                delay = max(verdict.after or 0.0, wait)
            if attempt == self._attempts:
                raise GaveUp(error, attempt) from error
            log.info(
                f"{self.channel} {what} failed, retrying",
                attempt=attempt,
                error=str(error),
                retry_in=delay,
                **context,
            )
            await asyncio.sleep(delay)
            wait *= 2
        raise AssertionError("unreachable")

    async def _deliver(self, request_id: str, approvers: Sequence[str] | None) -> None:
        """Deliver to the targets not delivered to (or given up on) yet.

        ``approvers`` None: as the request's approvers are now (an escalation added some).
        """
        view = await self._requests.find_request(request_id)
        if approvers is None:
            approvers = await self._requests.approvers_of(view)
        targets = await self._adapter.targets(view, approvers)
        if not targets:
            return
        targets = await self._still_to_deliver(request_id, targets)
        if not targets:
            return
        # The sends run side by side; their appends to the request's stream
        # take turns, so none of them runs out of retries on a stale version.
        recording = asyncio.Lock()
        await asyncio.gather(*(self._deliver_to(target, view, recording) for target in targets))

    async def _deliver_to(self, target: Target, view: RequestView, recording: asyncio.Lock) -> None:
        try:
            sent = await self._retrying(
                lambda: self._send(target, view),
                "send",
                request_id=view.request_id,
                address=target.address,
            )
        except GaveUp as gave_up:
            log.warning(
                f"{self.channel} delivery failed",
                request_id=view.request_id,
                address=target.address,
                attempts=gave_up.attempts,
                error=str(gave_up.error),
            )
            async with recording:
                await self._requests.record_delivery_failure(
                    view.request_id,
                    view.tenant,
                    channel=self.channel,
                    error=str(gave_up.error),
                    attempts=gave_up.attempts,
                    **whom(self.channel, target.address),
                )
            return
        async with recording:
            await record_sent(
                self._requests,
                self.channel,
                view,
                sent,
                lambda decided: self._adapter.show_state(sent.delivery, decided),
            )
        log.info(f"{self.channel} request sent", request_id=view.request_id, address=target.address)

    async def _send(self, target: Target, view: RequestView) -> Sent:
        try:
            return await self._adapter.send(target, view)
        except Exception:
            self._requests.metrics.delivery_failed(self.channel)
            raise

    async def _still_to_deliver(self, request_id: str, targets: list[Target]) -> list[Target]:
        """The targets still owed the message: none once the request is decided.

        A target is done once the message was shown there or given up on (a
        Telegram ``DeliveryFailed`` without a chat is from before routing: the
        only chat).
        """
        history = [r.event for r in await self._store.read_stream(f"request-{request_id}")]
        if request_domain.is_terminal(request_domain.fold(history)):
            return []
        done: set[str | None] = {
            event.target
            for event in history
            if isinstance(event, RequestDelivered | DeliveryFailed)
            and event.channel == self.channel
        }
        if None in done:
            return []
        return [target for target in targets if target.address not in done]

    async def deliveries_of(self, request_id: str) -> list[Delivery]:
        """Every message of this channel that shows ``request_id``, oldest first."""
        rows = await self._store.fetch(
            "SELECT address, message_id, conversation, routed_by FROM deliveries"
            " WHERE channel = ? AND request_id = ? ORDER BY delivered_at",
            (self.channel, request_id),
        )
        return [
            Delivery(
                address=row["address"],
                message_id=row["message_id"],
                conversation=row["conversation"],
                routed_by=row["routed_by"],
            )
            for row in rows
        ]

    async def _show_state(self, request_id: str) -> None:
        lock = self._editing.setdefault(request_id, asyncio.Lock())
        async with lock:
            deliveries = await self.deliveries_of(request_id)
            if not deliveries:
                return
            view = await self._requests.find_request(request_id)
            await asyncio.gather(*(self._edit(delivery, view) for delivery in deliveries))

    async def _edit(self, delivery: Delivery, view: RequestView) -> None:
        try:
            await self._retrying(
                lambda: self._adapter.show_state(delivery, view),
                "edit",
                request_id=view.request_id,
            )
        except GaveUp as gave_up:
            log.warning(
                f"{self.channel} message not brought up to date",
                request_id=view.request_id,
                address=delivery.address,
                message_id=delivery.message_id,
                error=str(gave_up.error),
            )

    async def _nudge(self, request_id: str, kind: Nudge) -> None:
        """A note under the request's message for every target that shows it, while it is open."""
        deliveries = await self.deliveries_of(request_id)
        if not deliveries:
            return
        view = await self._requests.find_request(request_id)
        if view.final:
            return  # decided meanwhile: its messages say so already
        # One note per target, under its newest message (``/pending`` may have shown it again).
        newest = {delivery.address: delivery for delivery in deliveries}
        await asyncio.gather(*(self._note(delivery, view, kind) for delivery in newest.values()))

    async def _note(self, delivery: Delivery, view: RequestView, kind: Nudge) -> None:
        try:
            await self._retrying(
                lambda: self._adapter.nudge(delivery, view, kind),
                "reply",
                request_id=view.request_id,
            )
        except GaveUp as gave_up:
            log.warning(
                f"{self.channel} reminder not sent",
                request_id=view.request_id,
                address=delivery.address,
                error=str(gave_up.error),
            )
            return
        log.info(
            f"{self.channel} reminder sent", request_id=view.request_id, address=delivery.address
        )
