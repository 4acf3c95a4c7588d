"""The bot inside the server: built with the app, started and stopped with it.

In webhook mode Telegram POSTs updates to ``/telegram/webhook``
(``web/telegram.py``) and the webhook is registered at start when
``telegram.webhook_url`` is set. In polling mode the dispatcher asks Telegram
for updates in a background task, after deleting any webhook (Telegram
refuses ``getUpdates`` while one is set). Either way Telegram being down at
start does not stop the server: registration is retried in the background.

The bot's own username (``getMe``, asked at start and retried the same way)
makes the deep links a member opens to link their account
(:meth:`TelegramRuntime.deep_link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable

import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.utils.token import TokenValidationError

from loopgate.channels.model import ChannelContext
from loopgate.channels.sender import ChannelSender
from loopgate.channels.telegram.callbacks import CallbackSigner
from loopgate.channels.telegram.desk import OperatorDesk
from loopgate.channels.telegram.handlers import build_router
from loopgate.channels.telegram.inbox import UpdateInbox
from loopgate.channels.telegram.sender import telegram_sender
from loopgate.config import ConfigError, TelegramConfig, TelegramMode

log = structlog.get_logger(__name__)

SETUP_RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)  # then every 30 s


def make_bot(config: TelegramConfig) -> Bot:
    """A bot talking to ``telegram.api_base``; a malformed token is a ``ConfigError``."""
    try:
        return Bot(
            config.bot_token,
            session=AiohttpSession(api=TelegramAPIServer.from_base(config.api_base)),
        )
    except TokenValidationError:
        raise ConfigError(
            "telegram.bot_token: not a bot token (expected <digits>:<secret>, from @BotFather)"
        ) from None


class TelegramRuntime:
    def __init__(
        self, config: TelegramConfig, mode: TelegramMode, *, console_url: str = ""
    ) -> None:
        self.config, self.mode = config, mode
        self.console_url = console_url
        """Where "✏️ Edit in console" buttons link to (``console_public_url``)."""
        self.bot = make_bot(config)
        self.dispatcher = Dispatcher()
        self.dispatcher.include_router(build_router())
        self.sender: ChannelSender | None = None
        self.username: str | None = None
        """The bot's @username without the @, once ``getMe`` answered."""
        self.identified = asyncio.Event()
        """Set once :attr:`username` is known."""
        self._setup: asyncio.Task[None] | None = None
        self._identify: asyncio.Task[None] | None = None

    def deep_link(self, code: str) -> str | None:
        """``https://t.me/<bot>?start=<code>``: opening it sends ``/start <code>`` to the bot.

        None while the bot's username is not known yet (Telegram unreachable
        since start): the member can still send ``/start <code>`` by hand.
        """
        if self.username is None:
            return None
        return f"https://t.me/{self.username}?start={code}"

    async def start(self, context: ChannelContext) -> None:
        signer = CallbackSigner.for_bot_token(self.config.bot_token)
        desk = OperatorDesk(
            context.requests,
            context.sessions,
            self.bot,
            signer,
            context.teams,
            console_url=self.console_url,
        )
        self.dispatcher["desk"] = desk
        self.dispatcher.update.outer_middleware(UpdateInbox(context.store, context.requests.clock))
        self.sender = telegram_sender(
            desk,
            context.lease_for("telegram"),
            attempts=self.config.delivery_attempts,
            retry_seconds=self.config.retry_seconds,
        )
        await self.sender.start()
        self._identify = asyncio.create_task(self._learn_username(), name="telegram-getme")
        if self.mode == "polling":
            self._setup = asyncio.create_task(self._poll(), name="telegram-polling")
        elif self.config.webhook_url:
            self._setup = asyncio.create_task(self._register_webhook(), name="telegram-webhook")
        else:
            log.warning(
                "telegram webhook mode without telegram.webhook_url: updates arrive only if "
                "the webhook was registered with Telegram some other way"
            )
        log.info("telegram on", mode=self.mode, api_base=self.config.api_base)

    async def stop(self) -> None:
        if self.mode == "polling":
            with contextlib.suppress(RuntimeError):  # polling never got started
                await self.dispatcher.stop_polling()
        for task in (self._setup, self._identify):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.sender is not None:
            await self.sender.stop()
        await self.bot.session.close()

    @property
    def _update_types(self) -> list[str]:
        return self.dispatcher.resolve_used_update_types()

    async def _until_done(self, what: str, call: Callable[[], Awaitable[object]]) -> None:
        for attempt in itertools.count():
            try:
                await call()
                return
            except Exception as exc:
                delay = SETUP_RETRY_SECONDS[min(attempt, len(SETUP_RETRY_SECONDS) - 1)]
                log.warning(f"telegram {what} failed, retrying", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)

    async def _learn_username(self) -> None:
        await self._until_done("getMe", self.bot.me)
        me = await self.bot.me()  # aiogram keeps the first answer: no second call
        self.username = me.username
        self.identified.set()
        log.info("telegram bot identified", username=me.username)

    async def _register_webhook(self) -> None:
        await self._until_done(
            "setWebhook",
            lambda: self.bot.set_webhook(
                self.config.webhook_url,
                secret_token=self.config.webhook_secret,
                allowed_updates=self._update_types,
            ),
        )
        log.info("telegram webhook registered", url=self.config.webhook_url)

    async def _poll(self) -> None:
        await self._until_done("deleteWebhook", self.bot.delete_webhook)
        log.info("telegram polling for updates")
        await self.dispatcher.start_polling(
            self.bot,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=self._update_types,
        )
