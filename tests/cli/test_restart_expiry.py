"""Expiry survives a restart: a real ``loopgate serve``, stopped and started on the same database.

The expirer keeps its timers in memory; at start it re-arms every open request
from the ``requests`` projection. These tests prove that with real processes on
both stores: the server that created the request is stopped before the
deadline, and the restarted one expires the request on time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from cli_server import create_request, get, running_server, stop

SLACK = timedelta(seconds=2)  # how late an expiry may be on a loaded machine


def poll_until_final(base: str, request_id: str) -> dict[str, Any]:
    status, body = get(f"{base}/hitl/poll?request_id={request_id}&wait=8", timeout=15)
    assert status == 200, body
    return dict(body)


def details(base: str, request_id: str) -> dict[str, Any]:
    status, body = get(f"{base}/v1/requests/{request_id}")
    assert status == 200, body
    return dict(body)


def logged(output: str, event: str) -> list[dict[str, Any]]:
    lines = [msgspec.json.decode(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


# The request's timeout: long enough for a stop and a start (about 2.5 s on a busy
# 2-core machine), short enough to keep the test quick.
RESTART_WINDOW = 6


def now() -> datetime:
    return datetime.now(UTC)


def test_a_request_expires_on_time_after_a_restart(fresh_database_url: str, tmp_path: Path) -> None:
    with running_server("--db", fresh_database_url, cwd=tmp_path) as (base, first):
        created = create_request(base, timeout_seconds=RESTART_WINDOW)
        output = stop(first)
    stopped_at = now()
    request_id = created["request_id"]
    created_at = datetime.fromisoformat(created["created_at"])
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert expires_at == created_at + timedelta(seconds=RESTART_WINDOW)
    assert stopped_at < expires_at, "the first server must stop before the deadline"
    assert not logged(output, "request expired")

    with running_server("--db", fresh_database_url, cwd=tmp_path) as (base, second):
        assert now() < expires_at, "the restart took longer than the timeout"
        assert details(base, request_id)["status"] == "pending"

        polled = poll_until_final(base, request_id)
        returned_at = now()
        view = details(base, request_id)
        output = stop(second)

    assert (polled["status"], polled["completed"], polled["approved"]) == ("timeout", True, False)
    assert returned_at - expires_at < SLACK
    assert (view["status"], view["outcome"], view["decided_by"]["kind"]) == (
        "expired",
        "expired",
        "policy",
    )
    decided_at = datetime.fromisoformat(view["decided_at"])
    assert expires_at <= decided_at < expires_at + SLACK
    # It was the restarted server that re-armed the request and expired it.
    assert [line["open_requests"] for line in logged(output, "expirer armed")] == [1]
    assert [line["request_id"] for line in logged(output, "request expired")] == [request_id]


def test_a_deadline_that_passed_while_stopped_expires_at_start(
    fresh_database_url: str, tmp_path: Path
) -> None:
    with running_server("--db", fresh_database_url, cwd=tmp_path) as (base, first):
        created = create_request(base, timeout_seconds=3)  # time enough to stop, when busy
        stop(first)
    request_id = created["request_id"]
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert now() < expires_at, "the first server must stop before the deadline"
    time.sleep(max(0.0, (expires_at - now()).total_seconds()) + 0.3)

    restarted_at = now()
    with running_server("--db", fresh_database_url, cwd=tmp_path) as (base, second):
        up_at = now()
        polled = poll_until_final(base, request_id)
        view = details(base, request_id)
        output = stop(second)

    assert (polled["status"], polled["completed"]) == ("timeout", True)
    decided_at = datetime.fromisoformat(view["decided_at"])
    assert restarted_at <= decided_at < up_at + timedelta(seconds=1)
    assert view["decided_by"]["kind"] == "policy"
    assert [line["request_id"] for line in logged(output, "request expired")] == [request_id]
