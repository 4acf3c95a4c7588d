"""Who is calling: one middleware resolves the caller once per request.

Credentials, tried in this order:

- ``X-API-Key: lk_pub_…`` or ``Authorization: Bearer lk_pub_…``: an API key,
  acting for the user who made it (its requests go to that user's tenant);
  an ``agent`` key may not answer requests, an ``operator`` key answers as
  that user (``Actor.answers_as``);
- ``Authorization: Bearer <jwt>``: a user logged in with ``/api/auth/login``,
  who answers as themselves.

Each authenticator returns ``None`` for "not mine" (no such header, another
scheme) and raises ``Unauthorized`` for "mine but invalid" (an unknown, revoked
or expired key, a token with a bad signature or past its expiry). A broken
credential is refused at once, even where anonymous callers are welcome:
silently treating it as anonymous would put the caller's requests in the wrong
tenant.

What each route asks for (anything not listed is an agent route, so a new
surface is protected until it says otherwise):

- public (``/health``, ``/healthz``, ``/readyz``, ``/openapi.json``, ``/docs``,
  ``/.well-known/jwks.json`` (the receipts' public keys), ``/api/auth/*``,
  ``/telegram/webhook``, which checks Telegram's secret header itself,
  ``/slack/events``, which checks Slack's signature itself,
  ``/email/*``, the pages of an email's signed links, and
  ``/metrics``, which checks ``metrics.token``):
  credentials are not even read, so a stale token never blocks logging in;
- ``/api/user/*`` (the API-key routes): a login token;
- ``/console`` and ``/console/*`` (the web console): its signed session
  cookie, and never an API key or token; signed out, a page redirects to the
  sign-in form instead of answering 401 (see ``web/console_session.py``);
- every other route (``/hitl/*``, ``/sessions/register``, ``/v1/*``): an API
  key or a login token when ``auth.require_api_key`` is on; otherwise an
  anonymous caller acts as ``Actor(id="anonymous", tenant="local")`` and may
  answer, as ``anonymous``.

Handlers only ever ask :func:`actor_of`.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from enum import Enum

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from loopgate.commands.base import Actor
from loopgate.config import Config, ConfigError, api_keys_required, is_loopback
from loopgate.domain.teams import ANY_PRINCIPAL, DEFAULT_WORKSPACE
from loopgate.errors import Unauthorized
from loopgate.web.console_session import console_gate, is_console_path
from loopgate.web.keys import ACCOUNTS, ACTOR, CREDENTIAL, REQUEST_ID

log = structlog.get_logger(__name__)

API_KEY_PREFIX = "lk_pub_"

# The Telegram webhook proves itself with its own secret header (web/telegram.py),
# Slack's requests with their signature (web/slack.py), /metrics with
# metrics.token (web/metrics.py).
_PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/healthz",
        "/readyz",
        "/telegram/webhook",
        "/slack/events",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/.well-known/jwks.json",
    }
)
# The email pages' signed token is their credential (web/email.py).
_PUBLIC_PREFIXES = ("/api/auth/", "/email/")
_USER_PREFIXES = ("/api/user/",)


class Policy(Enum):
    PUBLIC = "public"  # no credentials read
    USER = "user"  # a login token (JWT) required
    AGENT = "agent"  # an API key or a token; anonymous allowed unless keys are required
    CONSOLE = "console"  # the console's session cookie; signed out, a redirect to sign in


def policy_for(path: str) -> Policy:
    if path in _PUBLIC_PATHS or path.startswith(_PUBLIC_PREFIXES):
        return Policy.PUBLIC
    if is_console_path(path):
        return Policy.CONSOLE
    if path.startswith(_USER_PREFIXES):
        return Policy.USER
    return Policy.AGENT


def actor_of(request: web.Request) -> Actor:
    """The caller the auth middleware resolved for this request."""
    # No fallback to anonymous: a route reached without the middleware must fail, not open up.
    return request[ACTOR]


def anonymous(request: web.Request) -> Actor:
    # The open mode's quick start answers its own requests with curl, so the
    # anonymous caller may answer any of the default workspace's requests, and
    # the decision says so. It asks, reads and answers like an approver, and
    # exports the default workspace's log (which it can read anyway); it never
    # manages people or keys, even where keys are not required on a public address.
    return Actor(
        id="anonymous",
        tenant=DEFAULT_WORKSPACE,
        correlation_id=request.get(REQUEST_ID),
        answers_as="anonymous",
        address=request.remote,
        role="approver",
        principals=frozenset({ANY_PRINCIPAL}),
    )


def bearer(request: web.Request) -> str | None:
    """The credentials of ``Authorization: Bearer …``, if sent."""
    scheme, _, credentials = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def credential_of(request: web.Request) -> str | None:
    """The API key or token the caller sent, if any (not checked here)."""
    return request.headers.get("X-API-Key", "").strip() or bearer(request)


async def api_key_authenticator(request: web.Request) -> Actor | None:
    """An API key from ``X-API-Key`` or ``Authorization: Bearer lk_pub_…``."""
    raw = request.headers.get("X-API-Key", "").strip()
    if not raw:  # an empty header is what `curl -H "X-API-Key: $UNSET"` sends
        token = bearer(request)
        if token is None or not token.startswith(API_KEY_PREFIX):
            return None
        raw = token
    return await request.app[ACCOUNTS].authenticate_api_key(raw, request.get(REQUEST_ID))


async def token_authenticator(request: web.Request) -> Actor | None:
    """A login token (JWT) in ``Authorization: Bearer``."""
    token = bearer(request)
    if token is None or token.startswith(API_KEY_PREFIX):
        return None
    return await request.app[ACCOUNTS].actor_for_token(token, request.get(REQUEST_ID))


Authenticator = Callable[[web.Request], Awaitable[Actor | None]]
AUTHENTICATORS: tuple[tuple[str, Authenticator], ...] = (
    ("api_key", api_key_authenticator),
    ("token", token_authenticator),
)


async def authenticate(request: web.Request) -> tuple[Actor, str] | None:
    """The first authenticator that recognises the request: (actor, credential kind)."""
    for kind, authenticator in AUTHENTICATORS:
        actor = await authenticator(request)
        if actor is not None:
            return actor, kind
    return None


def auth_middleware(*, keys_required: bool) -> Middleware:
    """Resolve the caller into ``request[ACTOR]``, refusing what the route's policy forbids."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        policy = policy_for(request.path)
        if policy is Policy.CONSOLE:
            return await console_gate(request, handler)
        found = None if policy is Policy.PUBLIC else await authenticate(request)
        if policy is Policy.USER and (found is None or found[1] != "token"):
            raise Unauthorized(
                "this route needs a login token: send Authorization: Bearer <token> "
                "with the token from POST /api/auth/login"
            )
        if found is None and policy is Policy.AGENT and keys_required:
            raise Unauthorized(
                "this route needs an API key: send X-API-Key: lk_pub_… "
                "or Authorization: Bearer lk_pub_…"
            )
        actor, kind = found or (anonymous(request), "anonymous")
        request[ACTOR], request[CREDENTIAL] = actor, kind
        return await handler(request)

    return middleware


def jwt_secret_for(config: Config) -> str:
    """``auth.jwt_secret``, or a fresh one per start when it is empty on loopback.

    Raises ``ConfigError`` when it is empty on any other address: tokens signed
    with a secret nobody chose would be lost on every restart, and behind a
    load balancer each process would refuse the others' tokens.
    """
    if config.auth.jwt_secret:
        return config.auth.jwt_secret
    if not is_loopback(config.server.host):
        raise ConfigError(
            f"auth.jwt_secret: must be set when listening on {config.server.host!r} "
            "(only a loopback address may run without one); generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))' and set it in "
            "the config file or LOOPGATE_AUTH__JWT_SECRET"
        )
    log.warning(
        "auth.jwt_secret is not set: using a random one for this run; "
        "tokens will not survive a restart"
    )
    return secrets.token_urlsafe(32)


def auth_mode(config: Config) -> str:
    """How the agent routes are protected, in words for the start-up log."""
    if api_keys_required(config):
        return "api keys required"
    if is_loopback(config.server.host):
        return "open (loopback)"
    return "open (auth.require_api_key = false)"
