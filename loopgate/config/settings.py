"""Loopgate's settings: one table of settings and the frozen, typed config it describes.

``SETTINGS`` is the single list of what can be configured: dotted name, type,
default, help and any environment names the Go reference server used for it.
Types and defaults come from the ``*Config`` structs (``structs.py``), so the two cannot
disagree; ``config.example.toml`` and the README are checked against the table
by tests. ``loopgate.config.load`` fills the structs from the table's sources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import msgspec

from loopgate.config.structs import Config


@dataclass(frozen=True)
class Setting:
    """One configurable value; ``minimum``/``maximum`` bound numbers (inclusive)."""

    name: str
    type: Any
    default: Any
    help: str
    env_aliases: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None

    @property
    def env_var(self) -> str:
        """The ``LOOPGATE_SECTION__KEY`` variable that sets this setting."""
        section, key = self.name.split(".")
        return f"LOOPGATE_{section.upper()}__{key.upper()}"


SECTIONS: dict[str, type[msgspec.Struct]] = {
    field.name: field.default_factory for field in msgspec.structs.fields(Config)
}


def _setting(
    name: str,
    help: str,
    *env_aliases: str,
    minimum: float | None = None,
    maximum: float | None = None,
) -> Setting:
    # Type and default are read from the struct field, so they are declared once.
    section, key = name.split(".")
    field = {f.encode_name: f for f in msgspec.structs.fields(SECTIONS[section])}[key]
    return Setting(name, field.type, field.default, help, env_aliases, minimum, maximum)


SETTINGS: tuple[Setting, ...] = (
    _setting(
        "server.host",
        "Address to listen on. 127.0.0.1 accepts local connections only; "
        "0.0.0.0 listens on every interface.",
    ),
    _setting("server.port", "TCP port to listen on.", "SERVER_PORT", minimum=1, maximum=65535),
    _setting(
        "server.shutdown_timeout_seconds",
        "Seconds to let open requests and streams finish on shutdown before closing them.",
        minimum=0,
    ),
    _setting(
        "server.allowed_hosts",
        "Host headers the server answers, comma-separated: host (any port), host:port, or * "
        "for any. Others get 421, so a web page cannot reach the API through DNS rebinding. "
        "Empty: 127.0.0.1, localhost, [::1] and server.host, on the port the server listens "
        "on; but any Host when bound to a non-loopback address with API keys required (a "
        "proxy's or a pod's name cannot be guessed, and a web page holds no API key). List "
        "your public name behind a proxy. /health, /healthz and /readyz answer any Host, for "
        "load-balancer checks.",
    ),
    _setting(
        "server.allowed_origins",
        "Browser origins (scheme://host[:port], comma-separated, or *) whose pages may call "
        "the API; a request with any other Origin header gets 403. A request without an "
        "Origin (curl, SDKs, agents) and a page of the server's own origin are always "
        "accepted. Empty: no other site. /console and /telegram/webhook check their own "
        "callers and are not affected.",
    ),
    _setting(
        "server.trusted_proxies",
        "Reverse proxies (IP addresses or networks such as 10.0.0.0/8, comma-separated) whose "
        "X-Forwarded-For header names the client. Failed logins are counted per client "
        "address, so behind a proxy list it here, or every client shares the proxy's count. "
        "Empty: the connection's own address, and X-Forwarded-For is ignored.",
    ),
    _setting(
        "database.url",
        "Event store: sqlite:///relative.db, sqlite:////absolute.db, sqlite:///:memory: "
        "(lost on exit) or postgresql://user:password@host:5432/dbname. The reference's "
        "DB_ADAPTER (postgres, sqlite, memory) + DB_URI (a URL or libpq key=value string) "
        "work too.",
        "DB_ADAPTER",
        "DB_URI",
        "STORAGE_ADAPTER",
        "POSTGRES_DSN",
        "SQLITE_DSN",
    ),
    _setting(
        "database.migrate_on_start",
        "Apply pending schema migrations at start-up. Turn off to run `loopgate migrate` yourself.",
    ),
    _setting("log.level", "Least severe level to log: debug, info, warning or error.", "LOG_LEVEL"),
    _setting(
        "log.format",
        "console (for people), json (one object per line) or auto "
        "(console on a terminal, json otherwise).",
    ),
    _setting(
        "requests.default_timeout_seconds",
        "Seconds a request waits for a human when it sets no timeout of its own; 0 waits forever.",
        "REQUEST_TIMEOUT",
        minimum=0,
    ),
    _setting(
        "requests.max_body_bytes",
        "Largest accepted HTTP request body in bytes; larger bodies are refused with 413.",
        minimum=1024,
    ),
    _setting(
        "requests.max_wait_seconds",
        "Longest long-poll a client may ask for with wait=N; larger values are capped.",
        minimum=0,
        maximum=3600,
    ),
    _setting(
        "limits.create_rate",
        "Requests each caller (an API key, a signed-in user, or an address when anonymous) "
        "may create a second, on average; over it, 429 rate_limited with Retry-After. "
        "0: no limit. Behind one Postgres the limit holds across all server processes.",
        minimum=0,
    ),
    _setting(
        "limits.create_burst",
        "Requests a caller may create at once before limits.create_rate applies: room for a "
        "CI run that asks several questions together.",
        minimum=1,
    ),
    _setting(
        "limits.answer_rate",
        "Answers each caller (a person, an operator key, a Telegram account) may give a "
        "second, on average; 0: no limit. Far above any human's pace, well below a script's.",
        minimum=0,
    ),
    _setting(
        "limits.answer_burst",
        "Answers a caller may give at once before limits.answer_rate applies.",
        minimum=1,
    ),
    _setting(
        "limits.login_rate",
        "Login attempts (API and console) each client address may make a second, on "
        "average; 0: no limit. Failed logins are throttled further, per user and address.",
        minimum=0,
    ),
    _setting(
        "limits.login_burst",
        "Login attempts an address may make at once before limits.login_rate applies. Above "
        "the 20 failed logins an address may make before the failed-login throttle holds it "
        "back, so that throttle, which says why, answers first.",
        minimum=1,
    ),
    _setting(
        "limits.max_waiters",
        "Long-polls (wait=N), MCP waits and event streams one server process holds open at "
        "once; more get 429 too_many_waiters. Each holds a connection and a file "
        "descriptor. 0: no cap.",
        minimum=0,
    ),
    _setting(
        "limits.max_waiters_per_workspace",
        "The same, for one workspace (tenant), so one busy tenant cannot take every slot "
        "of a process. 0: no cap.",
        minimum=0,
    ),
    _setting(
        "auth.registration",
        "open: anyone may sign up with POST /api/auth/register. closed: that route answers 403 "
        "and only `loopgate user create` adds users.",
    ),
    _setting(
        "auth.jwt_secret",
        "Secret that signs login tokens (HS256), at least 32 characters; generate one with "
        "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`. Empty: on a loopback "
        "address a new one is made at each start (tokens then die with the process); on any "
        "other address the server refuses to start. Placeholders starting with change-me are "
        "always refused.",
    ),
    _setting(
        "auth.require_api_key",
        "true: the /hitl, /sessions/register and /v1 routes answer 401 without an API key "
        "(or login token). false: anonymous callers share the open local tenant. auto: true "
        "unless server.host is a loopback address (127.0.0.1, ::1, localhost).",
    ),
    _setting(
        "auth.token_ttl_seconds",
        "Lifetime of the login tokens (JWT) that /api/auth/login hands out, in seconds.",
        minimum=60,
    ),
    _setting(
        "stream.heartbeat_seconds",
        "Seconds between heartbeat comments on the SSE event streams; a client that went "
        "away is noticed and released within one heartbeat.",
        minimum=1,
    ),
    _setting(
        "telegram.bot_token",
        "The bot's token from @BotFather. Empty: no Telegram; requests are answered through "
        "the API or the console.",
        "TELEGRAM_BOT_TOKEN",
    ),
    _setting(
        "telegram.api_base",
        "Bot API server URL; change it for a local Bot API server (or a test fake).",
    ),
    _setting(
        "telegram.mode",
        "How updates arrive. webhook: Telegram POSTs them to /telegram/webhook. polling: the "
        "server asks Telegram for them (no public URL needed). off: no Telegram. auto: off "
        "without a bot token, webhook when telegram.webhook_url is set, polling otherwise.",
    ),
    _setting(
        "telegram.webhook_url",
        "Public HTTPS URL of this server's /telegram/webhook, registered with setWebhook at "
        "start. Empty in webhook mode: register it yourself.",
    ),
    _setting(
        "telegram.webhook_secret",
        "Secret Telegram sends in X-Telegram-Bot-Api-Secret-Token with every webhook call "
        "(1-256 of A-Z, a-z, 0-9, _ and -); required in webhook mode.",
    ),
    _setting(
        "telegram.delivery_attempts",
        "Tries to send a request's message before giving up and recording DeliveryFailed "
        "(the request stays open for other channels).",
        minimum=1,
        maximum=100,
    ),
    _setting(
        "telegram.retry_seconds",
        "Wait before the first retry of a failed send; it doubles with every further try. "
        "Telegram's own retry_after wins when it asks for longer.",
        minimum=0.01,
        maximum=3600,
    ),
    _setting(
        "slack.bot_token",
        "The Slack app's bot token (xoxb-...). Empty: no Slack.",
    ),
    _setting(
        "slack.signing_secret",
        "The Slack app's signing secret: every call to /slack/events must carry a valid "
        "X-Slack-Signature made with it; required in http mode.",
    ),
    _setting(
        "slack.mode",
        "How Slack reaches the server. http: Slack POSTs clicks and slash commands to "
        "/slack/events (a public URL). socket: the server opens a Socket Mode connection "
        "(no public URL needed; needs slack.app_token).",
    ),
    _setting(
        "slack.app_token",
        "The app-level token (xapp-..., scope connections:write) Socket Mode connects with.",
    ),
    _setting(
        "slack.api_base",
        "Slack Web API URL, ending in /; change it for a test fake.",
    ),
    _setting(
        "slack.delivery_attempts",
        "Tries to post a request's Slack message before giving up and recording DeliveryFailed.",
        minimum=1,
        maximum=100,
    ),
    _setting(
        "slack.retry_seconds",
        "Wait before the first retry of a failed Slack call; it doubles with every further "
        "try. Slack's Retry-After wins when it asks for longer.",
        minimum=0.01,
        maximum=3600,
    ),
    _setting(
        "email.smtp_url",
        "SMTP server the approval mails go through: smtp://[user:password@]host[:port], "
        "smtps:// for TLS from the start, smtp+starttls:// to upgrade. Empty: no email.",
    ),
    _setting(
        "email.from",
        "The From: of the approval mails.",
    ),
    _setting(
        "email.public_url",
        "Base URL of the links in the mails (the server as approvers' browsers reach it). "
        "Empty: console.public_url's.",
    ),
    _setting(
        "email.delivery_attempts",
        "Tries to send a request's mail before giving up and recording DeliveryFailed.",
        minimum=1,
        maximum=100,
    ),
    _setting(
        "email.retry_seconds",
        "Wait before the first retry of a failed send; it doubles with every further try.",
        minimum=0.01,
        maximum=3600,
    ),
    _setting(
        "mcp.max_wait_seconds",
        "Longest an MCP tool call waits for a human's answer (request_human_input, "
        "check_request_status) before it returns the request as pending, to be checked again.",
        minimum=0,
        maximum=3600,
    ),
    _setting(
        "mcp.progress_seconds",
        "Seconds between progress notifications while an MCP tool call waits, so clients with "
        "idle timeouts keep the call open.",
        minimum=0.1,
        maximum=3600,
    ),
    _setting(
        "mcp.default_session",
        "Session of MCP requests that name none; callers with an API key or token get their "
        "own (this name plus a short hash of the credential).",
    ),
    _setting(
        "mcp.allowed_hosts",
        "Host headers /mcp accepts, comma-separated, host or host:port (host:* for any port). "
        "Empty: 127.0.0.1, localhost, [::1] and server.host, on any port. * turns the Host "
        "and Origin checks off. Guards against DNS rebinding; list your public name when "
        "behind a proxy.",
    ),
    _setting(
        "mcp.allowed_origins",
        "Origin headers /mcp accepts from browsers, comma-separated (e.g. "
        "https://app.example.com, or https://app.example.com:* for any port). Requests "
        "without an Origin (not from a browser) are always accepted. Empty: the allowed "
        "hosts over http and https.",
    ),
    _setting(
        "console.session_ttl_seconds",
        "How long a sign-in to the web console (/console) lasts, in seconds; signing out "
        "ends it at once.",
        minimum=60,
        maximum=30 * 86400,
    ),
    _setting(
        "console.secure_cookie",
        "auto: the console's cookies are marked Secure when the request came over https. "
        "true: always, for a server behind a proxy that terminates TLS (the browser then "
        "sends them over https only).",
    ),
    _setting(
        "console.public_url",
        "The console's address as people open it (e.g. https://loopgate.example.com), for "
        'links sent elsewhere: Telegram\'s "Edit in console" button. Empty: the origin of '
        "telegram.webhook_url when set, else http://<server.host>:<server.port>.",
    ),
    _setting(
        "webhooks.timeout_seconds",
        "Seconds a callback_url receiver has to answer one delivery; a slower answer counts "
        "as a failed attempt and is retried.",
        minimum=0.1,
        maximum=300,
    ),
    _setting(
        "webhooks.retry_seconds",
        "Wait before the first retry of a failed webhook delivery; it doubles with every "
        "further try, up to webhooks.max_retry_seconds.",
        minimum=0.01,
        maximum=3600,
    ),
    _setting(
        "webhooks.max_retry_seconds",
        "Longest wait between two attempts of one webhook delivery.",
        minimum=0.01,
        maximum=86400,
    ),
    _setting(
        "webhooks.max_age_seconds",
        "How long after a decision its webhook is still retried; after that the delivery is "
        "given up and WebhookFailed is recorded as final.",
        minimum=1,
        maximum=30 * 86400,
    ),
    _setting(
        "webhooks.allow_private_networks",
        "Allow callback_url hosts that resolve to loopback, private, link-local, reserved or "
        "cloud-metadata addresses. Off (the default), such URLs are refused with 422 at "
        "request creation and again at delivery, so a caller cannot make the server probe "
        "its own network.",
    ),
    _setting(
        "secrets.key",
        "Server key that encrypts the webhook signing secrets in the log (AES-256-GCM) and "
        "from which the receipts' Ed25519 signing keys are derived (HKDF-SHA256): the "
        "base64 of 32 random bytes, e.g. `python -c 'import base64, os; "
        "print(base64.b64encode(os.urandom(32)).decode())'`. Empty: the key is read from "
        "secrets.key_file, made there (mode 0600) on first use. Set the same key on every "
        "server that shares a Postgres database. Never in the log or an export; lose it and "
        "the secrets must be rotated, and the signing key too (loopgate keys rotate).",
    ),
    _setting(
        "secrets.key_file",
        "File holding the server key when secrets.key is empty. Empty: loopgate-secrets.key "
        "beside the SQLite database file, or in the working directory for Postgres; an "
        "in-memory SQLite database gets a key that lives as long as the process.",
    ),
    _setting(
        "receipts.ttl_seconds",
        "How long a receipt (the signed token an approved request with an action carries) "
        "may be redeemed after the decision: its exp is iat plus this.",
        minimum=1,
        maximum=30 * 86400,
    ),
    _setting(
        "receipts.issuer",
        "The iss claim of every receipt; a receipt of another issuer is refused at redeem.",
    ),
    _setting(
        "metrics.enabled",
        "Serve Prometheus metrics at /metrics. false: no /metrics anywhere.",
    ),
    _setting(
        "metrics.bind",
        "host:port of a listener of its own for /metrics (e.g. 127.0.0.1:9464, or "
        "[::1]:9464); the main port then does not serve it. Empty: /metrics is on the main "
        "port, but only when server.host is a loopback address or metrics.token is set "
        "(else it answers 404), so metrics are never public by default.",
    ),
    _setting(
        "metrics.token",
        "If set, /metrics asks for Authorization: Bearer <this token>, and is then served "
        "on the main port whatever server.host is. A secret: never logged.",
    ),
)


def settings_markdown_table() -> str:
    """Render ``SETTINGS`` as a Markdown table (key, default, env, description)."""
    rows = ["| Key | Default | Environment | Description |", "| --- | --- | --- | --- |"]
    for s in SETTINGS:
        # JSON spells booleans, numbers and plain strings the way TOML does.
        names = ", ".join(f"`{name}`" for name in (s.env_var, *s.env_aliases))
        description = s.help.replace("|", "\\|")
        rows.append(f"| `{s.name}` | `{json.dumps(s.default)}` | {names} | {description} |")
    return "\n".join(rows) + "\n"
