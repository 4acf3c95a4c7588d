"""Loopgate's configuration: the settings table, loading it and what it implies.

Being split into modules; ``load`` holds the sources,
``settings`` the rest for now.
"""

from loopgate.config.load import load_config
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
