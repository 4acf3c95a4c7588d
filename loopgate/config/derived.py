"""What a loaded config implies: the database backend, loopback binding, "auto" resolved.

The structs hold what people wrote; these functions answer what the server
needs to know from it, such as which store to open or whether callers need an
API key. Those that find no workable answer (an unsupported database URL,
webhook mode without a secret) raise ``ConfigError``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from loopgate.config.structs import Config, ConfigError

DATABASE_SCHEMES: dict[str, Literal["sqlite", "postgres"]] = {
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "postgres": "postgres",
}
_URL_HINT = "use sqlite:///path/to/file.db or postgresql://user@host/db"


def database_kind(url: str) -> Literal["sqlite", "postgres"]:
    """Say which backend a ``database.url`` names; raise ``ConfigError`` for others."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(f"database.url: expected a URL ({_URL_HINT})")
    kind = DATABASE_SCHEMES.get(scheme.lower())
    if kind is None:
        raise ConfigError(f"database.url: unsupported database {scheme!r} ({_URL_HINT})")
    return kind


def sqlite_path(url: str) -> str:
    """The file path in a SQLite URL: ``sqlite:///./x.db`` gives ``./x.db``.

    ``sqlite:////abs/x.db`` gives ``/abs/x.db`` and ``sqlite:///:memory:``
    gives ``:memory:``, as in SQLAlchemy's URLs.
    """
    prefix = "sqlite:///"
    if url[: len(prefix)].lower() != prefix or len(url) == len(prefix):
        raise ConfigError(
            "database.url: a SQLite URL is sqlite:/// followed by a path, e.g. "
            "sqlite:///relative.db, sqlite:////absolute.db or sqlite:///:memory:"
        )
    return url[len(prefix) :]


SECRETS_KEY_FILE = "loopgate-secrets.key"
SECRETS_KEY_BYTES = 32


def secrets_key(config: Config) -> bytes | None:
    """The server key from ``secrets.key`` (base64 of 32 bytes); None when it is not set."""
    raw = config.secrets.key.strip()
    return decode_secrets_key(raw) if raw else None


def decode_secrets_key(raw: str) -> bytes:
    """A server key from its base64; ``ConfigError`` unless it is 32 bytes."""
    try:
        key = base64.b64decode(raw, validate=True)
    except binascii.Error:
        key = b""
    if len(key) != SECRETS_KEY_BYTES:
        raise ConfigError(
            f"secrets.key: must be the base64 of {SECRETS_KEY_BYTES} bytes; make one with "
            "python -c 'import base64, os; print(base64.b64encode(os.urandom(32)).decode())'"
        )
    return key


def secrets_key_file(config: Config) -> Path | None:
    """Where the server key is kept when ``secrets.key`` is empty; None: in memory only.

    ``secrets.key_file`` if set; else beside the SQLite database file, or in
    the working directory for Postgres. An in-memory SQLite log dies with the
    process, and so may its key.
    """
    if config.secrets.key_file:
        return Path(config.secrets.key_file)
    url = config.database.url
    if database_kind(url) == "postgres":
        return Path(SECRETS_KEY_FILE)
    path = sqlite_path(url)
    if path == ":memory:":
        return None
    return Path(path).parent / SECRETS_KEY_FILE


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: 127.0.0.0/8, ::1 and localhost."""
    host = host.strip().removeprefix("[").removesuffix("]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def api_keys_required(config: Config) -> bool:
    """Resolve ``auth.require_api_key``: ``auto`` means required unless bound to loopback."""
    match config.auth.require_api_key:
        case "true":
            return True
        case "false":
            return False
        case "auto":
            return not is_loopback(config.server.host)


TelegramMode = Literal["webhook", "polling", "off"]
_WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")


def telegram_mode(config: Config) -> TelegramMode:
    """Resolve ``telegram.mode`` and check what that mode needs; raises ``ConfigError``."""
    telegram = config.telegram
    mode: TelegramMode
    if telegram.mode == "auto":
        if not telegram.bot_token:
            return "off"
        mode = "webhook" if telegram.webhook_url else "polling"
    else:
        mode = telegram.mode
    if mode == "off":
        return mode
    if not telegram.bot_token:
        raise ConfigError(
            f"telegram.bot_token: required in {mode} mode (or set TELEGRAM_BOT_TOKEN)"
        )
    if mode == "webhook" and not _WEBHOOK_SECRET.match(telegram.webhook_secret):
        raise ConfigError(
            "telegram.webhook_secret: required in webhook mode, 1-256 characters of "
            "A-Z, a-z, 0-9, _ and - (e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))')"
        )
    return mode


MetricsExposure = Literal["off", "main", "bind", "hidden"]


def metrics_exposure(config: Config) -> MetricsExposure:
    """Where ``/metrics`` is served: nowhere, the main port, ``metrics.bind``, or hidden.

    Hidden (the main port answers 404): bound beyond loopback with neither a
    listener of its own nor a token, so that metrics are never public by default.
    """
    metrics = config.metrics
    if not metrics.enabled:
        return "off"
    if metrics.bind:
        return "bind"
    if metrics.token or is_loopback(config.server.host):
        return "main"
    return "hidden"


def metrics_bind(bind: str) -> tuple[str, int]:
    """``metrics.bind`` as (host, port): ``127.0.0.1:9464``, ``[::1]:9464``, ``:9464``."""
    host, sep, port = bind.strip().rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"metrics.bind: expected host:port, e.g. 127.0.0.1:9464, got {bind!r}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)


def console_public_url(config: Config) -> str:
    """The console's base URL, without a trailing slash: what links to it start with.

    ``console.public_url`` if set; else the origin (scheme, host, port) of
    ``telegram.webhook_url``, which Telegram reaches the server at; else
    ``http://<server.host>:<server.port>``.
    """
    if config.console.public_url.strip():
        return config.console.public_url.strip().rstrip("/")
    if config.telegram.webhook_url:
        parts = urlsplit(config.telegram.webhook_url)
        if parts.scheme and parts.netloc:
            return f"{parts.scheme}://{parts.netloc}"
    host = config.server.host
    if ":" in host and not host.startswith("["):  # an IPv6 address
        host = f"[{host}]"
    return f"http://{host}:{config.server.port}"
