"""No web page can drive the API: the Content-Type, Host and Origin rules, in one middleware.

A browser lets any page POST a ``text/plain`` body or a form to any address
without asking the server first (a "simple" request), and after a DNS rebind
a page of ``evil.example`` talks to ``127.0.0.1`` under its own name. In the
open loopback mode, where anonymous callers may create and answer requests,
either would let a page the operator opens drive Loopgate. So, on every route:

- a body must be ``application/json`` (parameters such as ``; charset=utf-8``
  are fine), else 415 ``unsupported_media_type``: a page cannot send that
  type to another origin without a CORS preflight, which Loopgate never
  grants. A request without a body (GET, HEAD, a bare POST) passes;
- the ``Host`` must be one of ``server.allowed_hosts``, else 421
  ``host_not_allowed``: a rebound name is not on the list;
- an ``Origin``, when a browser sends one, must be the server's own (the
  origin of the ``Host`` it was sent to) or one of ``server.allowed_origins``,
  else 403 ``origin_not_allowed``. No ``Origin`` (curl, SDKs, agents) passes.

Exempt are the routes that check their callers themselves: ``/console`` and
``/console/*`` (a signed cookie and a CSRF token per form, see
``web/console_session.py``; its forms are ``application/x-www-form-urlencoded``)
``/telegram/webhook`` (Telegram's secret header), ``/slack/events`` (Slack's
signature) and ``/email/*`` (an email link's signed token, and a CSRF token
per form, see ``web/email.py``). The health routes answer
any ``Host``, because a load balancer or kubelet calls them by the pod's
address; they read nothing and change nothing.

When ``server.allowed_hosts`` is empty the list is derived from the bind
address: ``127.0.0.1``, ``localhost``, ``[::1]`` and ``server.host``, each on
the port the connection came in on. Bound to a non-loopback address with API
keys required, any ``Host`` is accepted instead: the names a proxy or an
orchestrator uses cannot be guessed, and a page holds no API key to send.
``/mcp`` also keeps the MCP SDK's own check (``mcp.allowed_hosts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopgate.config import Config, ConfigError, api_keys_required, is_loopback
from loopgate.errors import MisdirectedRequest, OriginNotAllowed, UnsupportedMediaType
from loopgate.web.console_session import is_console_path

JSON = "application/json"
ANY = "*"
# The routes with a check of their own (Slack posts forms, not JSON).
_SELF_CHECKED_PATHS = frozenset({"/telegram/webhook", "/slack/events"})
# The email links' pages: a signed token in the path, a CSRF token and Origin check per form.
_SELF_CHECKED_PREFIXES = ("/email/",)
_ANY_HOST_PATHS = frozenset({"/health", "/healthz", "/readyz"})
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARD_BINDS = ("0.0.0.0", "::", "")
# A port in a host pattern: None matches any port, LISTENING the one the connection reached.
LISTENING = 0


@dataclass(frozen=True)
class Allowed:
    """The effective lists; ``None`` means anything is accepted."""

    hosts: frozenset[tuple[str, int | None]] | None
    origins: frozenset[str] | None

    def describe(self, port: int | None = None) -> dict[str, str]:
        """The lists as people write them, for the start-up log; ``port``: the listening one."""

        def spelled(name: str, allowed: int | None) -> str:
            if allowed is None:
                return name
            if allowed == LISTENING:
                return f"{name}:{'<port>' if port is None else port}"
            return f"{name}:{allowed}"

        hosts = ANY if self.hosts is None else ",".join(sorted(spelled(*h) for h in self.hosts))
        origins = ANY if self.origins is None else ",".join(sorted(self.origins))
        return {"allowed_hosts": hosts, "allowed_origins": origins or "(own origin only)"}


def _items(setting: str) -> list[str]:
    return [item.strip() for item in setting.split(",") if item.strip()]


def split_host(value: str) -> tuple[str, int | None]:
    """``name[:port]`` or ``[v6][:port]``, lower-cased; ``ValueError`` when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 2:
            raise ValueError(value)
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, colon, port = value.partition(":")
        rest = colon + port
    if not name:
        raise ValueError(value)
    if not rest:
        return name, None
    port = rest[1:]
    if rest[0] != ":" or not port.isdigit() or len(port) > 5:
        raise ValueError(value)
    return name, int(port)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def allowed_for(config: Config) -> Allowed:
    """The lists ``config`` asks for; raises ``ConfigError`` for an unreadable entry."""
    server = config.server
    hosts: frozenset[tuple[str, int | None]] | None
    entries = _items(server.allowed_hosts)
    if ANY in entries:
        hosts = None
    elif entries:
        parsed = set()
        for entry in entries:
            try:
                name, port = split_host(entry.removesuffix(":*"))
            except ValueError:
                raise ConfigError(
                    f"server.allowed_hosts: {entry!r} is not host, host:port or host:*"
                ) from None
            parsed.add((name, port))
        hosts = frozenset(parsed)
    elif not is_loopback(server.host) and api_keys_required(config):
        hosts = None
    else:
        names = {*_LOOPBACK_NAMES}
        if server.host not in _WILDCARD_BINDS:
            names.add(_bracketed(server.host.lower()))
        hosts = frozenset((name, LISTENING) for name in names)
    origins_set = {origin.lower().rstrip("/") for origin in _items(server.allowed_origins)}
    origins = None if ANY in origins_set else frozenset(origins_set)
    return Allowed(hosts=hosts, origins=origins)


def _listening_port(request: web.Request, fallback: int) -> int:
    transport = request.transport
    sock = transport.get_extra_info("sockname") if transport is not None else None
    return sock[1] if isinstance(sock, tuple) and len(sock) >= 2 else fallback


def _check_host(request: web.Request, hosts: frozenset[tuple[str, int | None]], port: int) -> None:
    sent = request.headers.get("Host")
    if sent is None:
        return  # HTTP/1.0 without a Host: not a browser, so no rebinding to fear
    try:
        name, sent_port = split_host(sent)
    except ValueError:
        name, sent_port = "", None
    if sent_port is None:
        sent_port = 443 if request.secure else 80
    for allowed_name, allowed_port in hosts:
        wanted = port if allowed_port == LISTENING else allowed_port
        if name == allowed_name and wanted in (None, sent_port):
            return
    raise MisdirectedRequest(
        f"this server does not answer to the host {sent!r}; list it in server.allowed_hosts"
    )


def _check_origin(request: web.Request, origins: frozenset[str] | None) -> None:
    origin = request.headers.get("Origin")
    if origin is None or origins is None:
        return
    normalized = origin.strip().lower().rstrip("/")
    own = urlsplit(normalized).netloc == request.headers.get("Host", "").strip().lower()
    if (own and normalized != "null") or normalized in origins:
        return
    raise OriginNotAllowed(
        f"a page of {origin!r} may not call this API; list its origin in server.allowed_origins"
    )


def _check_body(request: web.Request) -> None:
    if request.body_exists and request.content_type != JSON:
        sent = request.headers.get("Content-Type", "none")
        raise UnsupportedMediaType(
            f"send the body as JSON with Content-Type: {JSON} (got {sent!r})"
        )


def guard_middleware(config: Config) -> Middleware:
    """The middleware for ``config``'s lists; raises ``ConfigError`` for an unreadable list."""
    allowed = allowed_for(config)
    fallback_port = config.server.port

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if (
            is_console_path(path)
            or path in _SELF_CHECKED_PATHS
            or path.startswith(_SELF_CHECKED_PREFIXES)
        ):
            return await handler(request)
        if allowed.hosts is not None and path not in _ANY_HOST_PATHS:
            _check_host(request, allowed.hosts, _listening_port(request, fallback_port))
        _check_origin(request, allowed.origins)
        _check_body(request)
        return await handler(request)

    return guard
