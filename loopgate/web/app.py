"""``create_app(config)``: the one aiohttp application, composed per surface.

Middlewares, outermost first: the HTTP metrics (``web/metrics.py``), request
id and access log (every response carries ``X-Request-ID``, every log line the
id), the client's address behind a trusted proxy (``web/proxies.py``; only when
``server.trusted_proxies`` is set), the error renderer, the console's page
renderer (HTML errors on ``/console`` pages), the body-size limit, the browser
guard (Content-Type, Host and Origin; see ``web/guard.py``), then auth (who is
calling; see ``web/auth.py``), so even a 404 for an unknown route, a 413, a 421
or a 401 comes out in the JSON error shape (or, on the console, as a page) with
the request id on it. The id is set as the response is prepared, so responses
that handlers stream themselves (SSE, ``/mcp``) carry it too.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from functools import partial

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from loopgate.accounts.users import AccountService
from loopgate.channels.model import ChannelContext
from loopgate.channels.webhooks.secrets import SecretBox
from loopgate.channels.webhooks.sender import WebhookSender
from loopgate.commands.base import utcnow
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions
from loopgate.config import (
    Config,
    KeySource,
    api_keys_required,
    server_key_source,
    telegram_mode,
)
from loopgate.errors import PayloadTooLarge
from loopgate.grants import Grants
from loopgate.hub import Hub
from loopgate.limits import Limits
from loopgate.metrics import Metrics
from loopgate.policies import Policies
from loopgate.reactors.expirer import Expirer
from loopgate.reactors.lease import CHANNEL_LEASES, SCHEDULER_LEASE, WEBHOOK_LEASE, lease_for
from loopgate.reactors.scheduler import Scheduler
from loopgate.receipts import Receipts
from loopgate.store import open_store
from loopgate.store.base import EventStore
from loopgate.teams import Teams
from loopgate.web import (
    accounts,
    api,
    audit,
    console,
    grants,
    health,
    hitl,
    mcp,
    metrics,
    openapi,
    policy,
    receipts,
    stream,
    teams,
    webhooks,
)
from loopgate.web.auth import auth_middleware, jwt_secret_for
from loopgate.web.channels import start_channels, stop_channels
from loopgate.web.errors import error_middleware
from loopgate.web.guard import guard_middleware
from loopgate.web.keys import (
    ACCOUNTS,
    CONFIG,
    EXPIRER,
    GRANTS,
    HUB,
    METRICS,
    POLICIES,
    RECEIPTS,
    REQUEST_ID,
    REQUESTS,
    SCHEDULER,
    SECRET_BOX,
    SESSIONS,
    STORE,
    TEAMS,
    TELEGRAM,
    WEBHOOKS,
)
from loopgate.web.params import nul_middleware
from loopgate.web.proxies import proxies_middleware

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# A client's own id is reused only if it is short and plain, so it is safe to log and echo.
_CLIENT_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


SECRET_SEGMENTS = ("{token}",)
"""Path parameters that are credentials (an invitation's token): logged by name, not value."""


def loggable_path(request: web.Request) -> str:
    """The path for the access log, with any credential in it replaced by its parameter name."""
    resource = request.match_info.route.resource
    template = resource.canonical if resource is not None else ""
    return template if any(s in template for s in SECRET_SEGMENTS) else request.path


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = sent if _CLIENT_REQUEST_ID.match(sent) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await handler(request)
        log.info(
            "http",
            method=request.method,
            path=loggable_path(request),
            status=response.status,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
    return response


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    # On prepare, not after the handler: a streamed response (SSE, the ASGI bridge behind
    # /mcp) has sent its headers by the time the handler returns.
    if REQUEST_ID in request:
        response.headers.setdefault(REQUEST_ID_HEADER, request[REQUEST_ID])


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    # aiohttp enforces client_max_size only when a handler reads the body; a
    # declared length over the limit is refused at once, whatever the route.
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"request body of {request.content_length} bytes is over the {limit}-byte limit"
        )
    return await handler(request)


def create_app(
    config: Config,
    *,
    store: EventStore | None = None,
    clock: Callable[[], datetime] | None = None,
) -> web.Application:
    """Build the application. Without ``store``, it opens one from ``config`` on start-up.

    ``clock`` replaces the wall clock of the account service (key expiry, rate
    limits), for tests. Raises ``ConfigError`` when ``auth.jwt_secret`` is
    missing where it must be set, ``secrets.key`` is no key, the Telegram
    or email settings cannot work, or ``server.allowed_hosts`` or ``server.trusted_proxies``
    cannot be read, before
    anything is opened.
    """
    jwt_secret = jwt_secret_for(config)
    forwarded = proxies_middleware(config)
    app_metrics = Metrics()
    app = web.Application(
        middlewares=[
            metrics.http_metrics_middleware(app_metrics),
            request_id_middleware,
            *([forwarded] if forwarded else []),
            error_middleware,
            console.console_middleware,
            nul_middleware,
            body_limit_middleware,
            guard_middleware(config),
            auth_middleware(keys_required=api_keys_required(config)),
        ],
        client_max_size=config.requests.max_body_bytes,
    )
    app.on_response_prepare.append(_add_request_id)
    app[CONFIG] = config
    # One source for both: an in-memory log's key is made by the source.
    server_key = server_key_source(config)
    app[SECRET_BOX] = SecretBox(server_key)
    if store is not None:
        app[STORE] = store
    else:
        app.cleanup_ctx.append(_store_context)
    app.cleanup_ctx.append(
        partial(_runtime_context, jwt_secret=jwt_secret, clock=clock, server_key=server_key)
    )
    app.add_routes(health.routes)
    app.add_routes(hitl.routes)
    app.add_routes(api.routes)
    app.add_routes(accounts.routes)
    app.add_routes(stream.routes)
    app.add_routes(audit.routes)
    app.add_routes(webhooks.routes)
    app.add_routes(teams.routes)
    app.add_routes(policy.routes)
    app.add_routes(grants.routes)
    app.add_routes(receipts.routes)
    app.add_routes(openapi.routes)
    metrics.setup(app, config, app_metrics)
    console.setup(app)
    mcp.setup(app, config)
    if telegram_mode(config) != "off":
        # Imported only now: aiogram takes seconds to import, which a server
        # without Telegram (and every `loopgate` command) should not pay.
        from loopgate.web import telegram

        telegram.setup(app, config)
    if config.slack.bot_token:
        from loopgate.web import slack  # slack_bolt, likewise: only for a server with Slack on

        slack.setup(app, config)
    if config.email.smtp_url.strip():
        from loopgate.web import email

        email.setup(app, config)
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    # Open SSE streams would otherwise hold the shutdown until their clients hang up.
    if HUB in app:
        app[HUB].close_subscriptions()


async def _store_context(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    app[STORE] = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    yield
    await app[STORE].close()


async def _runtime_context(
    app: web.Application,
    *,
    jwt_secret: str,
    clock: Callable[[], datetime] | None,
    server_key: KeySource,
) -> AsyncIterator[None]:
    """The hub, the command handlers, the accounts and the reactors, over the app's store."""
    config, store, app_metrics = app[CONFIG], app[STORE], app[METRICS]
    store.metrics = app_metrics
    hub = Hub(
        store,
        max_waiters=config.limits.max_waiters,
        max_waiters_per_workspace=config.limits.max_waiters_per_workspace,
    )
    await hub.start()
    metrics.watch_hub(app_metrics, hub)
    private_ok = config.webhooks.allow_private_networks
    limits = Limits.from_config(config, store, _seconds(clock) if clock else time.time)
    sessions = Sessions(store, allow_private_callbacks=private_ok)
    app[TEAMS] = teams = Teams(store, clock=clock or utcnow)
    app[POLICIES] = policies = Policies(store, clock=clock or utcnow)
    app[GRANTS] = Grants(store, clock=clock or utcnow)
    requests = Requests(
        store,
        hub,
        sessions,
        default_timeout_seconds=config.requests.default_timeout_seconds,
        allow_private_callbacks=private_ok,
        metrics=app_metrics,
        limits=limits,
        roster=teams,
        policies=policies,
    )
    app[ACCOUNTS] = AccountService(
        store,
        jwt_secret=jwt_secret,
        token_ttl_seconds=config.auth.token_ttl_seconds,
        clock=clock or utcnow,
        limits=limits,
        teams=teams,
    )
    app[RECEIPTS] = Receipts(store, server_key, config.receipts, clock=clock or utcnow, hub=hub)
    expirer = Expirer(requests, hub, lease_for(store))
    await expirer.start()
    scheduler = Scheduler(requests, hub, lease_for(store, "scheduler", SCHEDULER_LEASE))
    await scheduler.start()
    webhook_lease = lease_for(store, "webhooks", WEBHOOK_LEASE)
    webhooks = WebhookSender(requests, sessions, webhook_lease, config.webhooks, app[SECRET_BOX])
    await webhooks.start()
    app_metrics.reactor(webhooks.name, lambda: webhooks.lag)
    app[HUB], app[EXPIRER], app[WEBHOOKS] = hub, expirer, webhooks
    app[SCHEDULER] = scheduler
    app[REQUESTS], app[SESSIONS] = requests, sessions
    if TELEGRAM not in app:
        log.info("telegram off", reason="no telegram.bot_token or telegram.mode = off")
    context = ChannelContext(
        requests=requests,
        sessions=sessions,
        teams=teams,
        store=store,
        lease_for=lambda channel: lease_for(store, channel, CHANNEL_LEASES[channel]),
        clock=clock or utcnow,
        server_key=server_key,
    )
    await start_channels(app, context, app_metrics)
    yield
    await stop_channels(app)
    await webhooks.stop()
    await scheduler.stop()
    await expirer.stop()
    app[RECEIPTS].close()
    await hub.stop()


def _seconds(clock: Callable[[], datetime]) -> Callable[[], float]:
    # The rate limits count in epoch seconds; a test's clock drives them too.
    return lambda: clock().timestamp()
