"""The operator's desk on Telegram: show a request, record that it was shown, show its outcome.

Shared by the sender reactor (new requests) and the ``/pending`` command
(requests shown again on demand). Every message shown is recorded as
``RequestDelivered`` with its chat and message id: that is how a text reply is
matched to its request and how the message is found again to be edited.
"""

from __future__ import annotations

import asyncio

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import Message

from loopgate.commands.requests import Service
from loopgate.errors import AlreadyDecided, RequestClosed, StoreUnavailable
from loopgate.telegram.callbacks import CallbackSigner
from loopgate.telegram.render import keyboard, outcome_text, request_text
from loopgate.views import RequestView

log = structlog.get_logger(__name__)

HTML = "HTML"
_RECORD_ATTEMPTS = 3
_RECORD_RETRY_SECONDS = 0.5


class OperatorDesk:
    def __init__(self, service: Service, bot: Bot, signer: CallbackSigner) -> None:
        self.service, self.bot, self.signer = service, bot, signer

    async def send_request(self, chat_id: int, view: RequestView) -> Message:
        """Post the question with its buttons; Telegram errors propagate to the caller."""
        return await self.bot.send_message(
            chat_id=chat_id,
            text=request_text(view),
            parse_mode=HTML,
            reply_markup=keyboard(view, self.signer),
        )

    async def record_delivery(self, view: RequestView, message: Message) -> None:
        """Append ``RequestDelivered``; if the request was decided meanwhile, show that instead."""
        for attempt in range(1, _RECORD_ATTEMPTS + 1):
            try:
                await self.service.mark_delivered(
                    view.request_id,
                    view.tenant,
                    channel="telegram",
                    external_message_id=str(message.message_id),
                    chat_id=message.chat.id,
                    # What send_request sent: the same pure rendering of the same view.
                    shown_text=request_text(view),
                    shown_options=tuple(option.label for option in view.options),
                )
                return
            except (AlreadyDecided, RequestClosed):
                decided = await self.service.find_request(view.request_id)
                await self.show_outcome(message.chat.id, message.message_id, decided)
                return
            except StoreUnavailable as exc:
                if attempt == _RECORD_ATTEMPTS:
                    # The message exists but the log does not know it: a reply
                    # to it will not be matched. Say so loudly.
                    log.error(
                        "telegram message sent but not recorded",
                        request_id=view.request_id,
                        message_id=message.message_id,
                        error=str(exc),
                    )
                    raise
                await asyncio.sleep(_RECORD_RETRY_SECONDS)

    async def show(self, chat_id: int, view: RequestView) -> Message:
        """Send a request and record it (``/pending``): no retries, errors propagate."""
        message = await self.send_request(chat_id, view)
        await self.record_delivery(view, message)
        return message

    async def show_outcome(self, chat_id: int, message_id: int, view: RequestView) -> None:
        """Edit a request's message to say how it ended; its buttons go away."""
        try:
            await self.bot.edit_message_text(
                text=outcome_text(view),
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=HTML,
                reply_markup=None,
            )
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return  # already shows it (an edit redone after a restart)
            # Deleted by the user, or too old to edit: nothing more to do.
            log.warning(
                "telegram message could not be edited",
                request_id=view.request_id,
                chat_id=chat_id,
                message_id=message_id,
                error=exc.message,
            )

    async def messages_of(self, request_id: str) -> list[tuple[int, int]]:
        """The (chat id, message id) of every message that shows ``request_id``."""
        rows = await self.service.store.fetch(
            "SELECT chat_id, message_id FROM telegram_messages WHERE request_id = ?"
            " ORDER BY delivered_at",
            (request_id,),
        )
        return [(int(row["chat_id"]), int(row["message_id"])) for row in rows]

    async def request_of_message(self, chat_id: int, message_id: int) -> str | None:
        """The request a message shows, if it shows one."""
        rows = await self.service.store.fetch(
            "SELECT request_id FROM telegram_messages WHERE chat_id = ? AND message_id = ?",
            (chat_id, message_id),
        )
        return rows[0]["request_id"] if rows else None
