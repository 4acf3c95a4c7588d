"""The commands that run a server: ``loopgate serve`` (HTTP) and ``loopgate mcp`` (stdio)."""

from __future__ import annotations

import asyncio
import signal
from urllib.parse import urlsplit

import structlog
from aiohttp import web

from loopgate import __version__
from loopgate.config import (
    Config,
    api_keys_required,
    database_kind,
    is_loopback,
    metrics_bind,
    metrics_exposure,
    sqlite_path,
)

log = structlog.get_logger("loopgate")


async def serve_mcp_stdio(config: Config, server_url: str, api_key: str | None) -> None:
    """The MCP tools on stdio, each call forwarded to ``server_url`` (logs go to stderr)."""
    from loopgate.client import LoopgateClient  # the MCP SDK is only loaded for this command
    from loopgate.mcp.gate import RemoteGate, default_session_for
    from loopgate.mcp.tools import build_server

    async with LoopgateClient(server_url, api_key) as client:
        gate = RemoteGate(client, default_session_for(api_key, config.mcp.default_session))
        server = build_server(
            lambda _ctx: gate,
            max_wait_seconds=config.mcp.max_wait_seconds,
            progress_seconds=config.mcp.progress_seconds,
        )
        log.info("mcp on stdio", server=server_url, api_key="set" if api_key else "none")
        await server.run_stdio_async()


def _where(url: str) -> str:
    """The database's location for the log, without credentials."""
    if database_kind(url) == "sqlite":
        return sqlite_path(url)
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _browsable(host: str) -> str:
    """A name a browser can open for ``host``: a wildcard bind is reached through loopback."""
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def _runner(app: web.Application, config: Config) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,
        shutdown_timeout=config.server.shutdown_timeout_seconds,
        handle_signals=False,
    )


def _log_metrics(config: Config) -> None:
    """Say where /metrics is (never the token itself)."""
    token = "set" if config.metrics.token else "none"
    match metrics_exposure(config):
        case "main":
            log.info("metrics on /metrics", token=token)
        case "bind":
            host, port = metrics_bind(config.metrics.bind)
            url = f"http://{_browsable(host)}:{port}/metrics"
            log.info("metrics on their own listener", url=url, token=token)
        case "hidden":
            log.info(
                "metrics off the public port: /metrics answers 404 here",
                host=config.server.host,
                to_turn_on="set metrics.bind (e.g. 127.0.0.1:9464) or metrics.token",
            )
        case "off":
            log.info("metrics off", setting="metrics.enabled = false")


async def serve(config: Config) -> None:
    """Run until SIGTERM/SIGINT, then stop accepting and let in-flight requests finish."""
    from loopgate.web.app import create_app
    from loopgate.web.auth import auth_mode
    from loopgate.web.guard import allowed_for
    from loopgate.web.keys import METRICS
    from loopgate.web.metrics import metrics_app

    app = create_app(config)  # refuses a missing auth.jwt_secret before opening anything
    runners = [_runner(app, config)]
    if metrics_exposure(config) == "bind":
        runners.append(_runner(metrics_app(config, app[METRICS]), config))
    for runner in runners:
        await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await web.TCPSite(runners[0], config.server.host, config.server.port).start()
        if len(runners) > 1:
            await web.TCPSite(runners[1], *metrics_bind(config.metrics.bind)).start()
        log.info(
            "loopgate listening",
            version=__version__,
            url=f"http://{config.server.host}:{config.server.port}",
            console=f"http://{_browsable(config.server.host)}:{config.server.port}/console",
            store=database_kind(config.database.url),
            database=_where(config.database.url),
            auth=auth_mode(config),
            registration=config.auth.registration,
            # What web/guard.py lets through: the Host and Origin headers a browser may send.
            **allowed_for(config).describe(config.server.port),
        )
        if not api_keys_required(config) and not is_loopback(config.server.host):
            log.warning(
                "the HITL routes are open to anyone who can reach this address",
                host=config.server.host,
                setting="auth.require_api_key = false",
            )
        _log_metrics(config)
        await stop.wait()
        log.info("shutting down", grace_seconds=config.server.shutdown_timeout_seconds)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    log.info("stopped")
