"""Typed keys for what the application shares between its handlers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from loopgate.accounts.console_sessions import ConsoleSessions
from loopgate.accounts.users import AccountService
from loopgate.channels.model import ChannelRuntime
from loopgate.channels.webhooks.secrets import SecretBox
from loopgate.channels.webhooks.sender import WebhookSender
from loopgate.commands.base import Actor
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.config import Config
from loopgate.domain.console import ConsoleSession
from loopgate.grants import Grants
from loopgate.hub import Hub
from loopgate.metrics import Metrics
from loopgate.policies import Policies
from loopgate.reactors.expirer import Expirer
from loopgate.reactors.scheduler import Scheduler
from loopgate.receipts import Receipts
from loopgate.store.base import EventStore
from loopgate.teams import Teams

if TYPE_CHECKING:  # aiogram takes seconds to import; only a server with Telegram on pays that
    from loopgate.channels.telegram.runtime import TelegramRuntime

CONFIG = web.AppKey("config", Config)
STORE = web.AppKey[EventStore]("store")
REQUEST_ID = web.RequestKey("request_id", str)
HUB = web.AppKey("hub", Hub)
REQUESTS = web.AppKey("requests", Requests)
SESSIONS = web.AppKey("sessions", Sessions)
EXPIRER = web.AppKey("expirer", Expirer)
SCHEDULER = web.AppKey("scheduler", Scheduler)
WEBHOOKS = web.AppKey("webhooks", WebhookSender)
SECRET_BOX = web.AppKey("secret_box", SecretBox)
ACCOUNTS = web.AppKey("accounts", AccountService)
TEAMS = web.AppKey("teams", Teams)
POLICIES = web.AppKey("policies", Policies)
GRANTS = web.AppKey("grants", Grants)
METRICS = web.AppKey("metrics", Metrics)
RECEIPTS = web.AppKey("receipts", Receipts)
# Every channel that is on (Telegram, Slack, email), by name: started after the reactors.
CHANNEL_RUNTIMES = web.AppKey[dict[str, ChannelRuntime]]("channel_runtimes")
# Present only when Telegram is on (telegram.mode resolves to webhook or polling).
TELEGRAM: web.AppKey[TelegramRuntime] = web.AppKey("telegram")
# Who is calling, resolved once per request by the auth middleware (web/auth.py).
ACTOR = web.RequestKey("actor", Actor)
# How the caller proved it: "api_key", "token" (a login JWT), "console" (the
# console's cookie) or "anonymous".
CREDENTIAL = web.RequestKey("credential", str)
CONSOLE_SESSIONS = web.AppKey("console_sessions", ConsoleSessions)
# The console session a browser's cookie holds, set by the console gate (web/console_session.py).
CONSOLE_SESSION = web.RequestKey("console_session", ConsoleSession)
