"""``POST /telegram/webhook``: aiogram's aiohttp webhook handler, with Loopgate's errors.

Telegram calls this route with every update and the secret it was given in
``setWebhook`` in ``X-Telegram-Bot-Api-Secret-Token``. A wrong or missing
secret is a 401 and nothing is read; a body that is not an update is a 400;
both in Loopgate's JSON error shape. The update is handled before the
response is sent, so a failure is a 5xx and Telegram delivers it again (the
update inbox makes a repeat after success a no-op).

The route exists only in webhook mode; the bot itself lives in
``loopgate/channels/telegram/runtime.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
import structlog
from aiogram.methods import TelegramMethod
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from loopgate.channels.telegram.runtime import TelegramRuntime
from loopgate.config import Config, console_public_url, telegram_mode
from loopgate.errors import BadRequest, Unauthorized
from loopgate.web.channels import register_channel
from loopgate.web.keys import TELEGRAM
from loopgate.wire import decode_body

log = structlog.get_logger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class UpdateEnvelope(msgspec.Struct):
    """What every update has; aiogram checks the rest."""

    update_id: int


class WebhookHandler(SimpleRequestHandler):
    async def handle(self, request: web.Request) -> web.Response:
        # verify_secret compares in constant time (secrets.compare_digest).
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), self.bot):
            raise Unauthorized(f"wrong or missing {SECRET_HEADER}", code="bad_webhook_secret")
        raw = await request.read()
        decode_body(raw, UpdateEnvelope)  # malformed JSON: a 400 that says where
        try:
            update = Update.model_validate_json(raw, context={"bot": self.bot})
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "update"
            raise BadRequest(
                f"not a Telegram update: {where}: {first['msg']}", code="invalid_update"
            ) from None
        try:
            update.event_type  # noqa: B018 - raises for an update of a type aiogram does not know
        except UpdateTypeLookupError:
            # A newer Bot API's update type: acknowledged, or Telegram would resend it.
            log.info("telegram update of an unknown type ignored", update_id=update.update_id)
            return web.json_response({})
        result: TelegramMethod[Any] | None = await self.dispatcher.feed_webhook_update(
            self.bot, update, **self.data
        )
        return web.Response(body=self._build_response_writer(bot=self.bot, result=result))


def setup(app: web.Application, config: Config) -> None:
    """Build the bot for ``config`` (when Telegram is on) and add the webhook route.

    Raises ``ConfigError`` for a Telegram set-up that cannot work.
    """
    mode = telegram_mode(config)
    assert mode != "off", "create_app sets up Telegram only when it is on"
    runtime = TelegramRuntime(config.telegram, mode, console_url=console_public_url(config))
    app[TELEGRAM] = runtime
    register_channel(app, "telegram", runtime)
    if mode == "webhook":
        handler = WebhookHandler(
            runtime.dispatcher,
            runtime.bot,
            handle_in_background=False,
            secret_token=config.telegram.webhook_secret,
        )
        app.router.add_post(WEBHOOK_PATH, handler.handle)
