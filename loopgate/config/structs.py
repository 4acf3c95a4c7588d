"""The typed, frozen configuration: one struct per section, and ``Config`` holding them all.

Each field's type and default is the setting's (``settings.py`` reads them
from here for its table, so the two cannot disagree).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class ConfigError(Exception):
    """A setting is missing, unknown or invalid; the message says which and why."""


class ServerConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: int = 8080
    shutdown_timeout_seconds: float = 10.0
    # Comma-separated; empty: derived from the bind address (see web/guard.py).
    allowed_hosts: str = ""
    allowed_origins: str = ""
    # Comma-separated addresses or networks (see web/proxies.py).
    trusted_proxies: str = ""


class DatabaseConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: str = "sqlite:///./loopgate.db"
    migrate_on_start: bool = True


class LogConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "console", "json"] = "auto"  # auto: console on a TTY, else json


class RequestsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    default_timeout_seconds: int = 300
    max_body_bytes: int = 1048576
    max_wait_seconds: int = 60


class AuthConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    registration: Literal["open", "closed"] = "open"
    jwt_secret: str = ""  # empty: generated per start on loopback, refused elsewhere
    # TOML has no null, so "unset" is spelled "auto": required unless bound to loopback.
    require_api_key: Literal["auto", "true", "false"] = "auto"
    token_ttl_seconds: int = 86400


class LimitsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    create_rate: float = 20.0
    create_burst: int = 100
    answer_rate: float = 10.0
    answer_burst: int = 50
    login_rate: float = 1.0
    login_burst: int = 30
    max_waiters: int = 10000
    max_waiters_per_workspace: int = 1000


class StreamConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    heartbeat_seconds: int = 15


class TelegramConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bot_token: str = ""
    api_base: str = "https://api.telegram.org"
    # TOML has no null, so "unset" is spelled "auto": see telegram_mode().
    mode: Literal["auto", "webhook", "polling", "off"] = "auto"
    webhook_url: str = ""
    webhook_secret: str = ""
    delivery_attempts: int = 5
    retry_seconds: float = 2.0


class SlackConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    bot_token: str = ""
    signing_secret: str = ""
    mode: Literal["http", "socket"] = "http"
    app_token: str = ""
    api_base: str = "https://slack.com/api/"
    delivery_attempts: int = 5
    retry_seconds: float = 2.0


class EmailConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    smtp_url: str = ""
    # "from" in TOML and as the setting's name; a Python keyword as an attribute.
    from_address: str = msgspec.field(default="Loopgate <loopgate@localhost>", name="from")
    public_url: str = ""
    delivery_attempts: int = 5
    retry_seconds: float = 2.0


class McpConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    max_wait_seconds: int = 50
    progress_seconds: float = 10.0
    default_session: str = "mcp"
    # Comma-separated; empty: the loopback names and server.host, on any port.
    allowed_hosts: str = ""
    allowed_origins: str = ""


class ConsoleConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    session_ttl_seconds: int = 43200
    # auto: Secure when the request came over https; true: always (behind a TLS proxy).
    secure_cookie: Literal["auto", "true"] = "auto"
    # Empty: telegram.webhook_url's origin if set, else http://<server.host>:<server.port>.
    public_url: str = ""


class WebhooksConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    timeout_seconds: float = 10.0
    retry_seconds: float = 5.0
    max_retry_seconds: float = 3600.0
    max_age_seconds: int = 86400
    allow_private_networks: bool = False


class SecretsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    key: str = ""  # base64 of 32 bytes; empty: read (or make) the key file
    key_file: str = ""  # empty: see secrets_key_file()


class ReceiptsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttl_seconds: int = 600
    issuer: str = "loopgate"


class MetricsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    enabled: bool = True
    bind: str = ""  # host:port of a listener of its own; empty: the main port (see derived.py)
    token: str = ""


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    database: DatabaseConfig = msgspec.field(default_factory=DatabaseConfig)
    log: LogConfig = msgspec.field(default_factory=LogConfig)
    requests: RequestsConfig = msgspec.field(default_factory=RequestsConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    stream: StreamConfig = msgspec.field(default_factory=StreamConfig)
    telegram: TelegramConfig = msgspec.field(default_factory=TelegramConfig)
    slack: SlackConfig = msgspec.field(default_factory=SlackConfig)
    email: EmailConfig = msgspec.field(default_factory=EmailConfig)
    mcp: McpConfig = msgspec.field(default_factory=McpConfig)
    console: ConsoleConfig = msgspec.field(default_factory=ConsoleConfig)
    webhooks: WebhooksConfig = msgspec.field(default_factory=WebhooksConfig)
    secrets: SecretsConfig = msgspec.field(default_factory=SecretsConfig)
    receipts: ReceiptsConfig = msgspec.field(default_factory=ReceiptsConfig)
    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
