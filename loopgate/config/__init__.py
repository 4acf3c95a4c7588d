"""Loopgate's configuration: the settings table, loading it and what it implies.

Being split into modules; for now everything lives in ``settings``.
"""

from loopgate.config.settings import (
    SETTINGS,
    AuthConfig,
    Config,
    ConfigError,
    ConsoleConfig,
    DatabaseConfig,
    LogConfig,
    McpConfig,
    RequestsConfig,
    ServerConfig,
    StreamConfig,
    TelegramConfig,
    TelegramMode,
    WebhooksConfig,
    api_keys_required,
    database_kind,
    is_loopback,
    load_config,
    settings_markdown_table,
    sqlite_path,
    telegram_mode,
)

__all__ = [
    "SETTINGS",
    "AuthConfig",
    "Config",
    "ConfigError",
    "ConsoleConfig",
    "DatabaseConfig",
    "LogConfig",
    "McpConfig",
    "RequestsConfig",
    "ServerConfig",
    "StreamConfig",
    "TelegramConfig",
    "TelegramMode",
    "WebhooksConfig",
    "api_keys_required",
    "database_kind",
    "is_loopback",
    "load_config",
    "settings_markdown_table",
    "sqlite_path",
    "telegram_mode",
]
