"""The update inbox: each Telegram ``update_id`` is handled once.

Telegram redelivers a webhook update it did not see acknowledged, and with
several server processes a redelivery can reach another one. The inbox claims
an update id in the store before handling it (``INSERT … ON CONFLICT DO
NOTHING``: exactly one claimant wins, across processes); a repeat is dropped.
A handler that fails releases its claim, so Telegram's retry is handled.

Telegram keeps undelivered updates for at most 24 hours, so claims older than
two days are pruned now and then.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from loopgate.store.base import EventStore

log = structlog.get_logger(__name__)

KEEP_CLAIMS = timedelta(days=2)
PRUNE_EVERY = 1000  # claims


class UpdateInbox(BaseMiddleware):
    """An outer middleware on the dispatcher's ``update`` observer."""

    def __init__(self, store: EventStore, clock: Callable[[], datetime]) -> None:
        self.store, self.clock = store, clock
        self._claims = 0

    async def claim(self, update_id: int) -> bool:
        """True if this process is the first to see ``update_id``."""
        now = self.clock()
        if self._claims % PRUNE_EVERY == 0:
            await self.store.execute(
                "DELETE FROM telegram_updates WHERE received_at < ?", (now - KEEP_CLAIMS,)
            )
        self._claims += 1
        claimed = await self.store.execute(
            "INSERT INTO telegram_updates (update_id, received_at) VALUES (?, ?)"
            " ON CONFLICT (update_id) DO NOTHING",
            (update_id, now),
        )
        return claimed == 1

    async def release(self, update_id: int) -> None:
        await self.store.execute("DELETE FROM telegram_updates WHERE update_id = ?", (update_id,))

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        if not await self.claim(event.update_id):
            log.info("telegram update repeated, ignored", update_id=event.update_id)
            return None
        try:
            return await handler(event, data)
        except BaseException:
            await self.release(event.update_id)
            raise
