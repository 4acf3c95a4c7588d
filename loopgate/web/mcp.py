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

Beside it, the reference's two plain-JSON helpers, with the same auth:
``GET /mcp/tools`` (every tool with the schemas ``tools/list`` gives) and
``GET /mcp/capabilities`` (what an ``initialize`` handshake reports). Both are
read from the MCP server itself, never from a list kept here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
from aiohttp import web
from mcp import Client
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.transport_security import TransportSecuritySettings
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from loopgate.commands.base import require
from loopgate.config import Config, is_loopback
from loopgate.mcp.gate import Gate, LocalGate, default_session_for
from loopgate.mcp.tools import build_server
from loopgate.web.asgi import ASGIBridge, BackgroundContext
from loopgate.web.auth import actor_of, credential_of
from loopgate.web.describe import describe
from loopgate.web.keys import RECEIPTS, REQUESTS, SESSIONS
from loopgate.web.responses import json_response

MCP_PATH = "/mcp"
TOOLS_PATH = "/mcp/tools"
CAPABILITIES_PATH = "/mcp/capabilities"
# Only this module's handlers read it, so it is kept here rather than in web/keys.py.
MCP_SERVER = web.AppKey("mcp_server", MCPServer)
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


class McpTool(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One tool, as MCP's ``tools/list`` gives it (its JSON Schemas, camelCase like MCP)."""

    name: str
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None


class McpTools(msgspec.Struct, frozen=True, kw_only=True):
    tools: list[McpTool]


class McpServerInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str


class McpCapabilities(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What an MCP client learns from ``initialize``, and the tools it would list.

    ``protocol_version``: the version ``initialize`` answers a client that asks
    for the newest; ``protocol_versions``: every version ``/mcp`` speaks (the
    handshake era's and the per-request era's).
    """

    protocol_version: str
    protocol_versions: list[str]
    server_info: McpServerInfo
    capabilities: dict[str, Any]
    instructions: str | None
    tools: list[str]


async def tools_of(server: MCPServer) -> McpTools:
    """The server's tools, as its ``tools/list`` handler lists them."""
    listed = await server.list_tools()
    return McpTools(
        tools=[
            McpTool(
                name=tool.name,
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
            )
            for tool in listed
        ]
    )


async def capabilities_of(server: MCPServer) -> McpCapabilities:
    """The server's ``initialize`` result, from a handshake with it in process.

    The SDK's own client, connected in memory, runs the handshake a remote
    client would: what it reports is what ``/mcp`` answers, by construction.
    """
    async with Client(server, mode="legacy") as client:
        info = client.server_info
        capabilities = client.server_capabilities.model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        listed = (await client.list_tools()).tools
        return McpCapabilities(
            protocol_version=client.protocol_version,
            protocol_versions=[*HANDSHAKE_PROTOCOL_VERSIONS, *MODERN_PROTOCOL_VERSIONS],
            server_info=McpServerInfo(
                name=info.name if info else server.name,
                version=info.version if info else server.version,
            ),
            capabilities=capabilities,
            instructions=server.instructions,
            tools=[tool.name for tool in listed],
        )


@describe(
    "The MCP server's tools, with the input schemas tools/list gives", replies={200: McpTools}
)
async def list_tools(request: web.Request) -> web.Response:
    require(actor_of(request), "request.read")
    return json_response(await tools_of(request.app[MCP_SERVER]))


@describe(
    "The MCP server's protocol versions, server info and capabilities, as initialize reports them",
    replies={200: McpCapabilities},
)
async def capabilities(request: web.Request) -> web.Response:
    require(actor_of(request), "request.read")
    return json_response(await capabilities_of(request.app[MCP_SERVER]))


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
    app[MCP_SERVER] = server
    app.router.add_get(TOOLS_PATH, list_tools)
    app.router.add_get(CAPABILITIES_PATH, capabilities)

    async def session_manager(app: web.Application) -> AsyncIterator[None]:
        running = BackgroundContext()
        await running.start(server.session_manager.run())
        yield
        await running.stop()

    async def end_calls(app: web.Application) -> None:
        await bridge.close()  # a waiting tool call would otherwise hold the shutdown

    app.cleanup_ctx.append(session_manager)
    app.on_shutdown.append(end_calls)
