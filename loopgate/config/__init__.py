"""Loopgate's configuration, declared once and loaded into frozen structs.

``structs`` holds the typed ``*Config`` structs, ``settings`` the table of
settings (``SETTINGS``) that documents them; ``load`` builds a ``Config`` from defaults,
a TOML file, the environment and overrides; ``derived`` answers what a loaded
config implies (the database backend, loopback binding, the "auto" values);
``server_key`` finds the server key that secrets are sealed and receipts signed with.
"""

from loopgate.config.derived import (
    MetricsExposure,
    TelegramMode,
    api_keys_required,
    console_public_url,
    database_kind,
    decode_secrets_key,
    is_loopback,
    metrics_bind,
    metrics_exposure,
    secrets_key,
    secrets_key_file,
    sqlite_path,
    telegram_mode,
)
from loopgate.config.load import load_config
from loopgate.config.server_key import (
    KeySource,
    derive_key,
    read_or_make_key,
    server_key_source,
)
from loopgate.config.settings import (
    SETTINGS,
    settings_markdown_table,
)
from loopgate.config.structs import (
    AuthConfig,
    Config,
    ConfigError,
    ConsoleConfig,
    DatabaseConfig,
    EmailConfig,
    LimitsConfig,
    LogConfig,
    McpConfig,
    MetricsConfig,
    ReceiptsConfig,
    RequestsConfig,
    SecretsConfig,
    ServerConfig,
    SlackConfig,
    StreamConfig,
    TelegramConfig,
    WebhooksConfig,
)

__all__ = [
    "SETTINGS",
    "AuthConfig",
    "Config",
    "ConfigError",
    "ConsoleConfig",
    "DatabaseConfig",
    "EmailConfig",
    "KeySource",
    "LimitsConfig",
    "LogConfig",
    "McpConfig",
    "MetricsConfig",
    "MetricsExposure",
    "ReceiptsConfig",
    "RequestsConfig",
    "SecretsConfig",
    "ServerConfig",
    "SlackConfig",
    "StreamConfig",
    "TelegramConfig",
    "TelegramMode",
    "WebhooksConfig",
    "api_keys_required",
    "console_public_url",
    "database_kind",
    "decode_secrets_key",
    "derive_key",
    "is_loopback",
    "load_config",
    "metrics_bind",
    "metrics_exposure",
    "read_or_make_key",
    "secrets_key",
    "secrets_key_file",
    "server_key_source",
    "settings_markdown_table",
    "sqlite_path",
    "telegram_mode",
]
