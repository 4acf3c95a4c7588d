"""The email channel inside the server: its SMTP server, its link signer, its sender.

Built with the app from ``[email]`` (a bad ``email.smtp_url`` or ``email.from``
is a ``ConfigError`` before anything starts) and started with it: the
:class:`~loopgate.channels.sender.ChannelSender` follows the log under the
``email`` lease and mails each request to its routed approvers
(``adapter.py``). Nothing connects to the SMTP server at start: each mail opens
its own connection, so an SMTP server that is down delays mail (retried from
the log) and never the server's start.
"""

from __future__ import annotations

from email.utils import parseaddr

import structlog

from loopgate.channels.email.adapter import EmailAdapter
from loopgate.channels.email.links import LinkSigner
from loopgate.channels.email.smtp import Mailer, parse_smtp_url
from loopgate.channels.model import ChannelContext
from loopgate.channels.sender import ChannelSender
from loopgate.config import ConfigError, EmailConfig

log = structlog.get_logger(__name__)


class EmailRuntime:
    def __init__(self, config: EmailConfig, *, console_url: str) -> None:
        self.config = config
        self.mailer = Mailer(parse_smtp_url(config.smtp_url))
        if "@" not in parseaddr(config.from_address)[1]:
            raise ConfigError(
                f"email.from: {config.from_address!r} is no address (Name <user@host>)"
            )
        self.console_url = console_url
        self.public_url = (config.public_url.strip() or console_url).rstrip("/")
        """The base of every link in a mail (``email.public_url``, else the console's)."""
        self.sender: ChannelSender | None = None
        self.signer: LinkSigner | None = None
        """Set at start, from the server key."""

    async def start(self, context: ChannelContext) -> None:
        self.signer = LinkSigner(context.server_key())
        adapter = EmailAdapter(
            context.teams,
            self.mailer,
            self.signer,
            sender=self.config.from_address,
            public_url=self.public_url,
            console_url=self.console_url,
            clock=context.clock,
        )
        self.sender = ChannelSender(
            adapter,
            context.requests,
            context.lease_for("email"),
            attempts=self.config.delivery_attempts,
            retry_seconds=self.config.retry_seconds,
        )
        await self.sender.start()
        server = self.mailer.server
        log.info("email on", smtp_host=server.hostname, smtp_port=server.port)

    async def stop(self) -> None:
        if self.sender is not None:
            await self.sender.stop()
