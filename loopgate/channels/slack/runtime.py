"""The Slack channel inside the server: its client, its Bolt app and its sender.

In ``http`` mode Slack POSTs clicks and slash commands to ``/slack/events``
(``web/slack.py``), which hands them to :attr:`SlackRuntime.bolt`. In
``socket`` mode (for a server with no public URL, as polling is for
Telegram) the server opens a WebSocket to Slack instead
(``apps.connections.open`` with the app-level token) and the same Bolt app
answers what comes over it. Either way Slack being down at start does not
stop the server: the Socket Mode client keeps trying in the background, and
the sender retries every message from the log.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_sdk.web.async_client import AsyncWebClient

from loopgate.channels.model import ChannelContext
from loopgate.channels.sender import ChannelSender
from loopgate.channels.slack.adapter import SlackAdapter
from loopgate.channels.slack.app import SlackAnswers, build_app
from loopgate.config import SlackConfig

log = structlog.get_logger(__name__)

SOCKET_RETRY_SECONDS = 5.0
"""How long the Socket Mode client waits between two failed connection attempts."""


class SlackRuntime:
    def __init__(self, config: SlackConfig, *, console_url: str = "") -> None:
        self.config = config
        self.console_url = console_url
        """Where "✏️ Edit in console" buttons link to (``console_public_url``)."""
        # No retry handlers of the SDK's own: the sender retries, from the log, and
        # waits for Slack's Retry-After.
        self.client = AsyncWebClient(
            token=config.bot_token, base_url=config.api_base, retry_handlers=[]
        )
        self.answers = SlackAnswers()
        self.bolt = build_app(self.client, config.signing_secret, self.answers)
        self.sender: ChannelSender | None = None
        self.socket: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None

    async def start(self, context: ChannelContext) -> None:
        self.answers.start(context)
        adapter = SlackAdapter(self.client, context.teams, console_url=self.console_url)
        self.sender = ChannelSender(
            adapter,
            context.requests,
            context.lease_for("slack"),
            attempts=self.config.delivery_attempts,
            retry_seconds=self.config.retry_seconds,
        )
        await self.sender.start()
        if self.config.mode == "socket":
            self.socket = AsyncSocketModeHandler(
                self.bolt, self.config.app_token, ping_interval=SOCKET_RETRY_SECONDS
            )
            # connect() retries by itself until Slack answers: in the background.
            connecting = self.socket.connect_async()  # type: ignore[no-untyped-call]
            self._connecting = asyncio.create_task(connecting, name="slack-socket-mode")
        log.info("slack on", mode=self.config.mode, api_base=self.config.api_base)

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self.socket is not None:
            await self.socket.close_async()  # type: ignore[no-untyped-call]
        if self.sender is not None:
            await self.sender.stop()
