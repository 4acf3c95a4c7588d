"""``/mcp``: the MCP SDK's Streamable HTTP server inside the aiohttp app.

The SDK's Starlette app is served through our ASGI bridge (``web/asgi.py``).
It runs stateless: every request stands alone, so any of several server
processes can serve any call, in both protocol eras the SDK speaks (the
2026-07-28 per-request protocol and the 2025-11-25 ``initialize`` handshake).

Auth is the REST API's: the auth middleware resolves the caller before the
bridge (401 when keys are required and none is sent), and the bridge hands
the caller to the tools in the ASGI scope's ``state``. The SDK checks the
Host and Origin headers against ``mcp.allowed_hosts``/``mcp.allowed_origins``
(DNS-rebinding protection).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings

from loopgate.config import Config, is_loopback
from loopgate.mcp.gate import Gate, LocalGate, default_session_for
from loopgate.mcp.tools import build_server
from loopgate.web.asgi import ASGIBridge, BackgroundContext
from loopgate.web.auth import actor_of, credential_of
from loopgate.web.keys import RECEIPTS, REQUESTS, SESSIONS

MCP_PATH = "/mcp"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_GATE = "loopgate.gate"


def _split(setting: str) -> list[str]:
    return [item.strip() for item in setting.split(",") if item.strip()]


def transport_security(config: Config) -> TransportSecuritySettings:
    """The Host/Origin allow-lists; ``*`` as a host turns the protection off."""
    hosts = _split(config.mcp.allowed_hosts)
    if "*" in hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    if not hosts:
        names = [*_LOOPBACK_NAMES]
        if not is_loopback(config.server.host) and config.server.host not in ("0.0.0.0", "::"):
            names.append(config.server.host)
        hosts = [pattern for name in names for pattern in (name, f"{name}:*")]
    origins = _split(config.mcp.allowed_origins) or [
        f"{scheme}://{host}" for host in hosts for scheme in ("http", "https")
    ]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def _gate_of(ctx: Context) -> Gate:
    """The gate the bridge put in this call's HTTP request."""
    request = ctx.request_context.request
    gate: Gate = request.scope["state"][_GATE]  # type: ignore[union-attr]
    return gate


def setup(app: web.Application, config: Config) -> None:
    """Mount ``/mcp``; the SDK's session manager runs from start-up to cleanup."""
    server = build_server(
        _gate_of,
        max_wait_seconds=config.mcp.max_wait_seconds,
        progress_seconds=config.mcp.progress_seconds,
    )
    starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        transport_security=transport_security(config),
        max_request_body_size=config.requests.max_body_bytes,
    )

    def state(request: web.Request) -> dict[str, Any]:
        gate = LocalGate(
            request.app[REQUESTS],
            request.app[SESSIONS],
            actor_of(request),
            default_session_for(credential_of(request), config.mcp.default_session),
            request.app[RECEIPTS],
        )
        return {_GATE: gate}

    bridge = ASGIBridge(starlette, state=state)
    app.router.add_route("*", MCP_PATH, bridge.handle)

    async def session_manager(app: web.Application) -> AsyncIterator[None]:
        running = BackgroundContext()
        await running.start(server.session_manager.run())
        yield
        await running.stop()

    async def end_calls(app: web.Application) -> None:
        await bridge.close()  # a waiting tool call would otherwise hold the shutdown

    app.cleanup_ctx.append(session_manager)
    app.on_shutdown.append(end_calls)
