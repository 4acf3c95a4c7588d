"""``GET /mcp/tools`` and ``GET /mcp/capabilities``: what the SDK's client learns, as plain JSON."""

from __future__ import annotations

import pytest

from mcptools.helpers import Live
from mcptools.test_tools import MODES


@pytest.mark.parametrize("mode", MODES)
async def test_the_tools_route_lists_what_tools_list_gives(live: Live, mode: str) -> None:
    async with live.client(mode) as client:
        listed = (await client.list_tools()).tools
    served = (await live.rest("GET", "/mcp/tools"))["tools"]
    assert [tool["name"] for tool in served] == [tool.name for tool in listed]
    for got, tool in zip(served, listed, strict=True):
        assert got["description"] == tool.description
        assert got["inputSchema"] == tool.input_schema
        assert got["outputSchema"] == tool.output_schema
    asking = next(tool for tool in served if tool["name"] == "request_human_input")
    assert asking["inputSchema"]["required"] == ["message"]


async def test_the_capabilities_route_reports_the_initialize_result(live: Live) -> None:
    async with live.client("legacy") as client:
        version, info = client.protocol_version, client.server_info
        capabilities = client.server_capabilities.model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        names = [tool.name for tool in (await client.list_tools()).tools]
    served = await live.rest("GET", "/mcp/capabilities")
    assert info is not None
    assert served["protocolVersion"] == version
    assert served["serverInfo"] == {"name": info.name, "version": info.version}
    assert served["serverInfo"]["name"] == "loopgate"
    assert served["capabilities"] == capabilities
    assert "tools" in served["capabilities"]
    assert served["tools"] == names
    assert served["instructions"] and "request_human_input" in served["instructions"]


async def test_a_client_of_either_era_speaks_a_version_the_route_names(live: Live) -> None:
    served = await live.rest("GET", "/mcp/capabilities")
    for mode in ("auto", "legacy"):
        async with live.client(mode) as client:
            assert client.protocol_version in served["protocolVersions"]
    assert served["protocolVersion"] in served["protocolVersions"]


async def test_the_helpers_take_the_same_keys_as_mcp(keyed: Live) -> None:
    for path in ("/mcp/tools", "/mcp/capabilities"):
        async with keyed.http.get(str(keyed.server.make_url(path))) as refused:
            assert refused.status == 401
            assert (await refused.json())["error"]["code"] == "unauthorized"
    key = {"X-API-Key": await keyed.new_api_key()}
    tools = await keyed.rest("GET", "/mcp/tools", headers=key)
    found = await keyed.rest("GET", "/mcp/capabilities", headers=key)
    assert found["tools"] == [tool["name"] for tool in tools["tools"]]
