"""MCP end to end: the SDK's client on ``/mcp`` of a real ``loopgate serve`` process.

On both stores and in both protocol eras (the 2026-07-28 per-request protocol,
reached by ``mode="auto"``, and the 2025-11-25 ``initialize`` handshake,
``mode="legacy"``): the tools are listed with ``message`` and ``options`` in
the schema; a request made without waiting and answered over REST reads back
through ``check_request_status``; a waiting call returns the answer given over
REST while it waits. And SIGTERM while a call waits for a human: the server
exits 0 within seconds, not after the shutdown grace, and the request is still
pending when the server comes back on the same database.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cli_server import kill, spawn_server, wait_until_up
from mcp import Client
from mcp_types import CallToolResult

TOOLS = {
    "request_human_input",
    "check_request_status",
    "cancel_request",
    "list_pending_requests",
    "register_session",
    "approve_tool_use",
}
ERAS = {"auto": "2026-07-28", "legacy": "2025-11-25"}
SHUTDOWN_TIMEOUT = 10.0  # server.shutdown_timeout_seconds, set explicitly
STOP_LIMIT = 5.0  # seconds from SIGTERM to exit with a tool call waiting


@dataclass
class Running:
    base: str
    process: subprocess.Popen[str]
    http: aiohttp.ClientSession
    log: Path

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    async def rest(self, method: str, path: str, **kwargs: Any) -> Any:
        async with self.http.request(method, f"{self.base}{path}", **kwargs) as response:
            body = await response.json()
            assert response.status < 300, body
            return body


@asynccontextmanager
async def loopgate(database_url: str, tmp_path: Path, log_name: str) -> AsyncIterator[Running]:
    log = tmp_path / log_name
    env = {
        "LOOPGATE_MCP__PROGRESS_SECONDS": "0.5",
        "LOOPGATE_SERVER__SHUTDOWN_TIMEOUT_SECONDS": str(SHUTDOWN_TIMEOUT),
    }
    base, process = spawn_server("--db", database_url, cwd=tmp_path, env=env, output=log)
    try:
        await asyncio.to_thread(wait_until_up, base, process, log)
        async with aiohttp.ClientSession() as http:
            yield Running(base, process, http, log)
    finally:
        kill(process)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    assert any(block.type == "text" for block in result.content)
    return dict(result.structured_content)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_ask_and_answer_over_http(mode: str, fresh_database_url: str, tmp_path: Path) -> None:
    async with (
        loopgate(fresh_database_url, tmp_path, "server.log") as server,
        Client(server.url, mode=mode) as client,
    ):
        assert client.protocol_version == ERAS[mode]
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == TOOLS
        schema = tools["request_human_input"].input_schema
        assert {"message", "options"} <= set(schema["properties"])
        assert "message" in schema["required"]

        # Not waiting: the request id at once, the answer given over REST read back.
        made = structured(
            await client.call_tool(
                "request_human_input",
                {"message": "Ship it?", "options": ["Ship", "Wait"], "wait": False},
            )
        )
        assert made["status"] == "pending"
        assert made["poll_after"] is not None
        answer = {"option": "Wait"}
        await server.rest("POST", f"/v1/requests/{made['request_id']}/response", json=answer)
        checked = structured(
            await client.call_tool("check_request_status", {"request_id": made["request_id"]})
        )
        assert (checked["status"], checked["response"]) == ("answered", "Wait")

        # Waiting: answered over REST 1.5 s into the call, which returns that answer.
        seen: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            seen.append(progress)

        call = asyncio.create_task(
            client.call_tool(
                "request_human_input",
                {
                    "message": "Deploy v2.1?",
                    "request_type": "confirmation",
                    "wait_seconds": 8,
                },
                progress_callback=on_progress,
            )
        )
        await asyncio.sleep(1.5)
        pending = await server.rest("GET", "/v1/requests?status=pending")
        [waiting] = [r for r in pending["requests"] if r["message"] == "Deploy v2.1?"]
        await server.rest(
            "POST", f"/v1/requests/{waiting['request_id']}/response", json={"option": "Approve"}
        )
        started = time.monotonic()
        found = structured(await asyncio.wait_for(call, 5))
        assert time.monotonic() - started < 2  # the answer, not the end of wait_seconds
    assert found["request_id"] == waiting["request_id"]
    assert (found["status"], found["approved"], found["response"]) == (
        "answered",
        True,
        "Approve",
    )
    assert seen, "no progress notification while the call waited"


async def test_sigterm_ends_a_waiting_call_promptly_and_the_request_stays_pending(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async with (
        loopgate(fresh_database_url, tmp_path, "first.log") as server,
        Client(server.url) as client,
    ):
        waiting = asyncio.Event()

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            waiting.set()

        call = asyncio.create_task(
            client.call_tool(
                "request_human_input",
                {"message": "Drop the table?", "options": ["Drop", "Keep"], "wait_seconds": 30},
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(waiting.wait(), 10)  # the call is waiting for a human
        [request] = (await server.rest("GET", "/v1/requests?status=pending"))["requests"]

        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(server.process.wait, 2 * SHUTDOWN_TIMEOUT)
        took = time.monotonic() - signalled
        # The waiting call ends without a result (the SSE stream closes).
        outcome = (await asyncio.gather(asyncio.wait_for(call, 10), return_exceptions=True))[0]
        print(f"stopped in {took:.2f} s; the waiting call ended with {outcome!r}"[:400])
        assert isinstance(outcome, Exception), outcome
    log = server.log.read_text()
    assert code == 0, log
    assert took < STOP_LIMIT, f"{took:.2f} s to stop\n{log}"
    assert '"stopped"' in log

    async with loopgate(fresh_database_url, tmp_path, "second.log") as again:
        found = await again.rest("GET", f"/v1/requests/{request['request_id']}")
    assert found["status"] == "pending", found
    assert found["completed"] is False
