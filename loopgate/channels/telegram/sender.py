"""Telegram as a channel: the adapter the one channel sender (``channels/sender.py``) drives.

Where a request goes (``Teams.targets``: the linked accounts of the members
its ``approvers`` name, and bare ``telegram:<id>`` selectors; a request made
before routing goes to its session's ``telegram_id``), how it is posted (the
question with its buttons, ``desk.py``), how a message is made to show the
request as it is now (``1 of 2 approvals — alice ✅`` while open; who decided
what and when, buttons gone, once final), and how it is nudged (a reply to
the message, ``nudges.py``). Telegram's ``retry_after`` is waited out; a chat
that does not exist or a bot the user blocked is given up on at once.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)

from loopgate.channels.model import Delivery, Nudge, RetryLater, Sent, Target, Undeliverable
from loopgate.channels.sender import ChannelSender
from loopgate.channels.telegram.desk import OperatorDesk
from loopgate.channels.telegram.nudges import expiry_warning_text, reminder_text
from loopgate.events import Channel
from loopgate.reactors.lease import Lease
from loopgate.views import RequestView

NAME = "telegram-sender"
_PERMANENT = (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)


class TelegramAdapter:
    name: Channel = "telegram"

    def __init__(self, desk: OperatorDesk) -> None:
        self._desk = desk

    async def targets(self, view: RequestView, approvers: Sequence[str]) -> list[Target]:
        if not approvers:  # made before routing: its session's operator, as then
            chat_id = await self._desk.sessions.telegram_operator(view.tenant, view.session_id)
            return [] if chat_id is None else [Target(str(chat_id))]
        return await self._desk.teams.targets("telegram", view.tenant, approvers)

    async def send(self, target: Target, view: RequestView) -> Sent:
        message = await self._desk.send_request(int(target.address), view)
        return Sent(
            Delivery(str(message.chat.id), str(message.message_id)),
            # What send_request sent: the same pure rendering of the same view.
            shown_text=await self._desk.request_text(view),
            shown_options=tuple(option.label for option in view.options),
        )

    async def show_state(self, delivery: Delivery, view: RequestView) -> None:
        await self._desk.show_state(int(delivery.address), int(delivery.message_id), view)

    async def nudge(self, delivery: Delivery, view: RequestView, kind: Nudge) -> None:
        text = reminder_text(view) if kind == "reminder" else expiry_warning_text(view)
        await self._desk.reply_to(int(delivery.address), int(delivery.message_id), text)

    def classify(self, error: BaseException) -> RetryLater | Undeliverable | None:
        if isinstance(error, _PERMANENT):
            return Undeliverable(str(error))
        match error:
            case TelegramRetryAfter(retry_after=after):
                return RetryLater(str(error), after=float(after))
            case TelegramAPIError() | aiohttp.ClientError() | TimeoutError():
                return RetryLater(str(error))
            case _:
                return None


def telegram_sender(
    desk: OperatorDesk, lease: Lease, *, attempts: int = 5, retry_seconds: float = 2.0
) -> ChannelSender:
    """The channel sender for Telegram, over ``desk``'s bot."""
    return ChannelSender(
        TelegramAdapter(desk),
        desk.requests,
        lease,
        attempts=attempts,
        retry_seconds=retry_seconds,
    )
