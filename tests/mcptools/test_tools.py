"""The MCP tools over Streamable HTTP, with the SDK's own client, in both protocol eras."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from mcptools.helpers import Live, structured, text_of

MODES = ["auto", "legacy"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


@pytest.mark.parametrize("mode", MODES)
async def test_the_tools_are_listed_with_their_schemas(live: Live, mode: str) -> None:
    async with live.client(mode) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {
        "request_human_input",
        "check_request_status",
        "cancel_request",
        "list_pending_requests",
        "register_session",
        "approve_tool_use",
    }
    asking = tools["request_human_input"]
    assert {"message", "options", "wait", "wait_seconds", "session_id"} <= set(
        asking.input_schema["properties"]
    )
    assert asking.input_schema["required"] == ["message"]
    assert asking.output_schema is not None
    assert {"request_id", "status", "approved", "response"} <= set(
        asking.output_schema["properties"]
    )


@pytest.mark.parametrize("mode", MODES)
async def test_a_request_made_without_waiting_is_answered_over_rest(live: Live, mode: str) -> None:
    async with live.client(mode) as client:
        made = structured(
            await client.call_tool(
                "request_human_input",
                {"message": "Deploy v2.1?", "options": ["Deploy", "Hold"], "wait": False},
            )
        )
        assert made["status"] == "pending"
        await live.rest(
            "POST", f"/v1/requests/{made['request_id']}/response", json={"option": "Deploy"}
        )
        checked = await client.call_tool("check_request_status", {"request_id": made["request_id"]})
    found = structured(checked)
    assert (found["status"], found["approved"], found["response"]) == ("answered", True, "Deploy")
    assert "approved" in text_of(checked)


@pytest.mark.parametrize("mode", MODES)
async def test_a_waiting_call_returns_the_answer_and_reports_progress(
    live: Live, mode: str
) -> None:
    progress: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append(done)

    async with live.client(mode) as client:
        call = asyncio.create_task(
            client.call_tool(
                "request_human_input",
                {"message": "Merge?", "request_type": "confirmation", "wait_seconds": 8},
                progress_callback=on_progress,
            )
        )
        (pending,) = await _open_requests(live)
        await asyncio.sleep(1.5)
        await live.rest(
            "POST", f"/v1/requests/{pending['request_id']}/response", json={"option": "Reject"}
        )
        found = structured(await call)
    assert (found["status"], found["approved"], found["response"]) == ("answered", False, "Reject")
    assert found["decided_by"]["kind"] == "human"
    assert len(progress) >= 1


async def _open_requests(live: Live) -> list[dict[str, object]]:
    for _ in range(100):
        listed = await live.rest("GET", "/v1/requests", params={"status": "pending"})
        if listed["requests"]:
            requests: list[dict[str, object]] = listed["requests"]
            return requests
        await asyncio.sleep(0.05)
    raise AssertionError("no request was created")


async def test_a_call_that_waits_past_wait_seconds_returns_pending_with_a_hint(
    live: Live,
) -> None:
    async with live.client() as client:
        result = await client.call_tool(
            "request_human_input", {"message": "Anyone?", "wait_seconds": 0.5}
        )
    found = structured(result)
    assert (found["status"], found["completed"]) == ("pending", False)
    assert found["poll_after"] > 0
    assert "check_request_status" in text_of(result)


async def test_a_client_that_hangs_up_mid_wait_leaves_the_request_pending_and_no_waiter(
    live: Live,
) -> None:
    async def ask_and_wait() -> None:
        async with live.client() as client:
            await client.call_tool(
                "request_human_input", {"message": "Still there?", "wait_seconds": 9}
            )

    call = asyncio.create_task(ask_and_wait())
    (pending,) = await _open_requests(live)
    await _until(lambda: live.waiting == 1)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await _until(lambda: live.waiting == 0)
    found = await live.rest("GET", f"/v1/requests/{pending['request_id']}")
    assert found["status"] == "pending"


async def test_cancel_list_and_register(live: Live) -> None:
    async with live.client() as client:
        registered = structured(
            await client.call_tool(
                "register_session",
                {"session_id": "deploys", "client_id": "ci", "telegram_id": 1001},
            )
        )
        assert (registered["session_id"], registered["telegram_id"]) == ("deploys", 1001)
        first = structured(
            await client.call_tool(
                "request_human_input",
                {"message": "one", "session_id": "deploys", "wait": False},
            )
        )
        second = structured(
            await client.call_tool("request_human_input", {"message": "two", "wait": False})
        )
        listed = structured(await client.call_tool("list_pending_requests", {}))
        assert {r["request_id"] for r in listed["requests"]} == {
            first["request_id"],
            second["request_id"],
        }
        only = structured(
            await client.call_tool("list_pending_requests", {"session_id": "deploys"})
        )
        assert [r["message"] for r in only["requests"]] == ["one"]
        cancelled = structured(
            await client.call_tool(
                "cancel_request", {"request_id": first["request_id"], "reason": "not needed"}
            )
        )
        assert (cancelled["status"], cancelled["outcome"]) == ("cancelled", "cancelled")
        after = structured(await client.call_tool("list_pending_requests", {}))
    assert [r["request_id"] for r in after["requests"]] == [second["request_id"]]
    assert second["session_id"] == "mcp"  # the default session of the open mode


async def test_errors_come_back_as_tool_errors_with_the_rest_code(live: Live) -> None:
    async with live.client() as client:
        missing = await client.call_tool("check_request_status", {"request_id": "nope"})
        blank = await client.call_tool("request_human_input", {"message": "   "})
        duplicate = await client.call_tool(
            "request_human_input", {"message": "?", "options": ["Yes", "yes"]}
        )
    assert missing.is_error and "request_not_found: " in text_of(missing)
    assert blank.is_error and "message" in text_of(blank)
    assert duplicate.is_error and "duplicate" in text_of(duplicate)
    assert (await live.rest("GET", "/v1/requests"))["requests"] == []


async def test_the_same_idempotency_key_returns_the_first_request(live: Live) -> None:
    arguments = {"message": "Once only?", "wait": False, "idempotency_key": "job-17"}
    async with live.client() as client:
        first = structured(await client.call_tool("request_human_input", arguments))
        again = structured(await client.call_tool("request_human_input", arguments))
    assert first["request_id"] == again["request_id"]
    assert len((await live.rest("GET", "/v1/requests"))["requests"]) == 1


async def test_keys_are_required_where_rest_requires_them(keyed: Live) -> None:
    for headers, code in (
        ({"X-API-Key": "lk_pub_not-a-real-key"}, "invalid_api_key"),
        ({}, "unauthorized"),
    ):
        # The SDK's client reports any HTTP error as "Server returned an error response"...
        with pytest.raises(BaseException) as refused:
            async with keyed.client(headers=headers) as client:
                await client.list_tools()
        assert "error response" in "\n".join(_messages(refused.value))
        # ... which is the REST API's 401, before MCP sees the call.
        async with keyed.http.post(keyed.url, json=INITIALIZE, headers=headers) as raw:
            assert raw.status == 401
            assert (await raw.json())["error"]["code"] == code
    alice, bob = await keyed.new_api_key(), await keyed.new_api_key()
    async with keyed.client(headers={"X-API-Key": alice}) as client:
        made = structured(
            await client.call_tool("request_human_input", {"message": "alice's", "wait": False})
        )
    async with keyed.client(headers={"Authorization": f"Bearer {bob}"}) as client:
        seen_by_bob = structured(await client.call_tool("list_pending_requests", {}))
        peek = await client.call_tool("check_request_status", {"request_id": made["request_id"]})
    assert made["session_id"].startswith("mcp-") and alice not in made["session_id"]
    assert seen_by_bob["requests"] == []
    assert peek.is_error and "request_not_found: " in text_of(peek)


async def test_an_unknown_host_is_refused(live: Live) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    url = live.url
    async with live.http.post(url, json=INITIALIZE, headers=headers) as fine:
        assert fine.status == 200
    evil = headers | {"Host": "evil.example.com"}
    async with live.http.post(url, json=INITIALIZE, headers=evil) as refused:
        assert refused.status == 421
    foreign = headers | {"Origin": "https://evil.example.com"}
    async with live.http.post(url, json=INITIALIZE, headers=foreign) as refused:
        assert refused.status == 403


async def test_mcp_answers_carry_the_request_id_like_every_route(live: Live) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    async with live.http.post(live.url, json=INITIALIZE, headers=headers) as made:
        assert made.status == 200
        assert len(made.headers["X-Request-ID"]) == 32
    sent = headers | {"X-Request-ID": "agent-7.call:1"}
    async with live.http.post(live.url, json=INITIALIZE, headers=sent) as echoed:
        assert echoed.headers["X-Request-ID"] == "agent-7.call:1"
    async with live.http.post(live.url, data=b"{}", headers=headers) as refused:
        assert refused.status == 415  # the guard's, in the JSON error shape, with the id
        assert (await refused.json())["error"]["code"] == "unsupported_media_type"
        assert refused.headers["X-Request-ID"]


def _messages(error: BaseException) -> list[str]:
    """Every message in an exception (group): how the SDK's client reports an HTTP error."""
    if isinstance(error, BaseExceptionGroup):
        return [m for inner in error.exceptions for m in _messages(inner)]
    return [str(error)]


async def _until(condition: Callable[[], bool]) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition not met within 5 s")


async def test_a_keyed_tenant_registering_mcp_does_not_break_anonymous_calls(live: Live) -> None:
    # Keys are optional on loopback: a key's user registers the anonymous default id.
    key = {"X-API-Key": await live.new_api_key()}
    squat = {"session_id": "mcp", "client_id": "squatter", "telegram_id": 666}
    await live.rest("POST", "/v1/sessions", json=squat, headers=key)

    async with live.client() as client:
        made = await client.call_tool("request_human_input", {"message": "Mine?", "wait": False})
    assert not made.is_error, text_of(made)
    assert structured(made)["session_id"] == "mcp"

    # Each tenant has its own "mcp": anonymous callers see the MCP one, the key its own.
    anonymous = await live.rest("GET", "/v1/sessions/mcp")
    squatters = await live.rest("GET", "/v1/sessions/mcp", headers=key)
    assert (anonymous["client_id"], anonymous["telegram_id"]) == ("mcp", None)
    assert (squatters["client_id"], squatters["telegram_id"]) == ("squatter", 666)
    assert (await live.rest("GET", "/v1/requests", headers=key))["requests"] == []


async def test_a_quorum_request_reports_its_votes_as_they_come(live: Live) -> None:
    """Two people of the default workspace must approve; the tool shows each vote."""
    owner = {"username": f"owner_{uuid.uuid4().hex[:8]}", "password": "x" * 12}
    await live.rest("POST", "/api/auth/register", json=owner)  # the server's first user
    owner_token = (await live.rest("POST", "/api/auth/login", json=owner))["token"]
    bob = {"username": f"bob_{uuid.uuid4().hex[:8]}", "password": "x" * 12}
    await live.rest(
        "POST",
        "/v1/members",
        json=bob | {"role": "approver"},
        headers={"Authorization": f"Bearer {owner_token}"},
    )
    bob_token = (await live.rest("POST", "/api/auth/login", json=bob))["token"]

    async with live.client() as client:
        too_many = await client.call_tool(
            "request_human_input", {"message": "Pay?", "quorum": 3, "wait": False}
        )
        assert too_many.is_error and "quorum_unreachable" in text_of(too_many)
        made = structured(
            await client.call_tool(
                "request_human_input",
                {"message": "Pay?", "request_type": "confirmation", "quorum": 2, "wait": False},
            )
        )
        assert (made["quorum"], made["approvals"], made["votes"]) == (2, 0, [])
        path = f"/v1/requests/{made['request_id']}/response"
        for token in (owner_token, bob_token):
            await live.rest(
                "POST",
                path,
                json={"option": "Approve"},
                headers={"Authorization": f"Bearer {token}"},
            )
            checked = await client.call_tool(
                "check_request_status", {"request_id": made["request_id"]}
            )
            if token == owner_token:
                assert structured(checked)["approvals"] == 1
                assert "1 of 2 approvals" in text_of(checked)
    found = structured(checked)
    assert (found["status"], found["approved"], found["approvals"]) == ("answered", True, 2)
    assert [v["channel"] for v in found["votes"]] == ["api", "api"]
