"""Where mail goes: ``email.smtp_url`` read once, and one ``aiosmtplib.send`` per message.

``smtp://[user:pass@]host[:port]`` speaks plain SMTP (port 25 by default; no
STARTTLS, even if offered), ``smtp+starttls://`` upgrades with STARTTLS and
refuses a server that does not offer it (587), ``smtps://`` is TLS from the
first byte (465). User and password are percent-decoded. A connection per
message: approval mail is rare, and no idle connection can go stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import aiosmtplib

from loopgate.config import ConfigError

DEFAULT_PORTS = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class SmtpServer:
    hostname: str
    port: int
    use_tls: bool = False
    start_tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line


def parse_smtp_url(url: str) -> SmtpServer:
    """``email.smtp_url`` as a server to send to; ``ConfigError`` saying what is wrong."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"email.smtp_url: not a URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ConfigError(
            f"email.smtp_url: scheme {parts.scheme!r} is not smtp://, smtp+starttls:// or smtps://"
        )
    if not parts.hostname:
        raise ConfigError("email.smtp_url: no host (smtp://host[:port])")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError("email.smtp_url: only [user:pass@]host[:port], no path or query")
    return SmtpServer(
        hostname=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        use_tls=scheme == "smtps",
        start_tls=scheme == "smtp+starttls",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


class Mailer:
    """Sends one message at a time to one SMTP server; errors are aiosmtplib's own."""

    def __init__(self, server: SmtpServer, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.server, self._timeout = server, timeout

    async def send(self, message: EmailMessage) -> None:
        server = self.server
        await aiosmtplib.send(
            message,
            hostname=server.hostname,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.use_tls,
            start_tls=server.start_tls,
            timeout=self._timeout,
        )
