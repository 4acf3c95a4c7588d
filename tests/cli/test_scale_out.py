"""Scale-out: several real ``loopgate serve`` processes on one Postgres database.

A request created on one process and answered on a second wakes a long-poll
on a third (NOTIFY, no polling); a cut LISTEN connection reconnects and
catches up; the expirer runs in exactly one process at a time (an advisory
lock lease) and another takes over when that one is killed. Postgres only:
SQLite is one process per database file.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import msgspec
import pytest
from cli_server import create_request, get, post, running_servers

from loopgate.reactors.lease import EXPIRER_LEASE, lease_name
from loopgate.store.postgres import LISTENER_NAME

pytestmark = pytest.mark.postgres

WAKE_LIMIT = 0.25  # seconds from an answer's response to the long-poll's, across processes
SLACK = timedelta(seconds=2)  # how late an expiry may be after a takeover
LEASE_APP = lease_name("expirer")

# The granted advisory lock of the expirer lease in this database, with its holder.
LEASE_HOLDERS = f"""
SELECT l.pid FROM pg_locks AS l JOIN pg_stat_activity AS a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND l.classid = {EXPIRER_LEASE >> 32} AND l.objid = {EXPIRER_LEASE & 0xFFFFFFFF}
  AND l.objsubid = 1 AND a.application_name = '{LEASE_APP}'
"""

Server = tuple[str, subprocess.Popen[str], Path]


@pytest.fixture
def database_url(postgres_url: str) -> Iterator[str]:
    """An empty database of its own (the servers migrate it), dropped afterwards."""
    name = f"loopgate_scale_{uuid.uuid4().hex[:12]}"
    asyncio.run(_execute(postgres_url, f'CREATE DATABASE "{name}"'))
    yield urlunsplit(urlsplit(postgres_url)._replace(path=f"/{name}"))
    asyncio.run(_execute(postgres_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _execute(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def query(url: str, sql: str) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        conn = await asyncpg.connect(url, timeout=5)
        try:
            return [dict(r.items()) for r in await conn.fetch(sql)]
        finally:
            await conn.close()

    return asyncio.run(run())


def logged(log: Path, event: str) -> list[dict[str, Any]]:
    lines = [msgspec.json.decode(line) for line in log.read_text().splitlines()]
    return [line for line in lines if isinstance(line, dict) and line.get("event") == event]


class LongPoll:
    """``/hitl/poll?wait=N`` in a thread; records when its response arrived."""

    def __init__(self, base: str, request_id: str, wait: int = 10) -> None:
        self.url = f"{base}/hitl/poll?request_id={request_id}&wait={wait}"
        self.timeout = wait + 5
        self.result: tuple[int, Any] | None = None
        self.returned_at = 0.0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.result = get(self.url, timeout=self.timeout)
        self.returned_at = time.monotonic()

    def join(self) -> dict[str, Any]:
        self._thread.join(self.timeout)
        assert self.result is not None, "the long-poll did not return"
        status, body = self.result
        assert status == 200, body
        return dict(body)


class EventStream:
    """``GET /v1/events`` read with aiohttp in a thread: (id, event, data) per message."""

    def __init__(self, url: str, count: int, timeout: float = 10) -> None:
        self.url, self.count, self.timeout = url, count, timeout
        self.messages: list[tuple[int, str, dict[str, Any]]] = []
        self.content_type = ""
        self.connected = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._read()), daemon=True)
        self._thread.start()
        assert self.connected.wait(timeout), "the event stream did not connect"

    async def _read(self) -> None:
        limit = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=limit) as http, http.get(self.url) as response:
            assert response.status == 200
            self.content_type = response.content_type
            self.connected.set()  # headers are sent after the hub subscription is taken
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    continue  # a heartbeat
                if line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
                    continue
                if "data" in fields:
                    data = msgspec.json.decode(fields["data"])
                    self.messages.append((int(fields["id"]), fields["event"], data))
                    if len(self.messages) == self.count:
                        return
                fields = {}

    def join(self) -> list[tuple[int, str, dict[str, Any]]]:
        self._thread.join(self.timeout + 1)
        return self.messages


def until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def lease_holders(url: str) -> list[int]:
    return [row["pid"] for row in query(url, LEASE_HOLDERS)]


def holder_of(url: str, servers: list[Server]) -> Server:
    """The server whose lease connection holds the lock (matched by its logged backend pid)."""
    [backend_pid] = lease_holders(url)
    matches = [
        server
        for server in servers
        if any(
            line["backend_pid"] == backend_pid
            for line in logged(server[2], "expirer lease acquired")
        )
    ]
    assert len(matches) == 1, matches
    return matches[0]


def test_an_answer_on_one_process_wakes_a_long_poll_on_another(
    database_url: str, tmp_path: Path
) -> None:
    with running_servers(3, "--db", database_url, cwd=tmp_path) as servers:
        (a, _, _), (b, _, _), (c, _, _) = servers
        request_id = create_request(a)["request_id"]
        poll = LongPoll(c, request_id)
        time.sleep(0.5)  # the long-poll is parked on C's hub
        assert poll.result is None

        sent_at = time.monotonic()
        status, body = post(f"{b}/v1/requests/{request_id}/response", {"option": "Approve"})
        answered_at = time.monotonic()
        assert status == 200, body
        polled = poll.join()

    latency = poll.returned_at - answered_at
    print(
        f"cross-process wake: {latency * 1000:.1f} ms after the answer's response,"
        f" {(poll.returned_at - sent_at) * 1000:.1f} ms after it was sent"
    )
    assert (polled["completed"], polled["approved"]) == (True, True)
    assert latency < WAKE_LIMIT


def test_a_cut_listen_connection_reconnects_and_catches_up(
    database_url: str, tmp_path: Path
) -> None:
    with running_servers(2, "--db", database_url, cwd=tmp_path) as servers:
        (a, _, _), (b, _, _) = servers
        request_id = create_request(a)["request_id"]
        poll = LongPoll(b, request_id)
        time.sleep(0.3)

        listeners = (
            "SELECT pid FROM pg_stat_activity"
            f" WHERE datname = current_database() AND application_name = '{LISTENER_NAME}'"
        )
        cut = query(
            database_url, f"SELECT pid, pg_terminate_backend(pid) AS cut FROM ({listeners}) AS l"
        )
        assert [row["cut"] for row in cut] == [True, True]
        # Answered at once: B may not be listening yet, so its catch-up must find this.
        status, body = post(f"{a}/v1/requests/{request_id}/response", {"option": "Reject"})
        answered_at = time.monotonic()
        assert status == 200, body
        polled = poll.join()

        assert (polled["completed"], polled["approved"]) == (True, False)
        assert poll.returned_at - answered_at < 3.0
        # Both processes listen again, on new connections.
        old = {row["pid"] for row in cut}
        until(lambda: len({row["pid"] for row in query(database_url, listeners)} - old) == 2)


def test_the_expirer_lease_is_held_by_exactly_one_process(
    database_url: str, tmp_path: Path
) -> None:
    with running_servers(3, "--db", database_url, cwd=tmp_path) as servers:
        contenders = (
            "SELECT count(*) AS n FROM pg_stat_activity"
            f" WHERE datname = current_database() AND application_name = '{LEASE_APP}'"
        )
        assert query(database_url, contenders)[0]["n"] == 3
        for _ in range(5):
            assert len(lease_holders(database_url)) == 1
            time.sleep(0.25)
        holder = holder_of(database_url, servers)
        acquired = [len(logged(log, "expirer lease acquired")) for _, _, log in servers]
        assert sorted(acquired) == [0, 0, 1]

        # A clean stop hands the lease to one of the others.
        holder[1].send_signal(signal.SIGTERM)
        holder[1].wait(15)
        rest = [server for server in servers if server is not holder]
        until(lambda: len(lease_holders(database_url)) == 1)
        assert holder_of(database_url, rest) in rest
        assert len(lease_holders(database_url)) == 1


def test_a_killed_lease_holder_hands_expiry_to_another_process(
    database_url: str, tmp_path: Path
) -> None:
    with running_servers(3, "--db", database_url, cwd=tmp_path) as servers:
        holder = holder_of(database_url, servers)
        base, process, _ = holder
        created = create_request(base, timeout_seconds=3)
        request_id = created["request_id"]
        expires_at = datetime.fromisoformat(created["expires_at"])
        process.kill()  # SIGKILL: no clean shutdown, the lease dies with the connection
        process.wait()

        rest = [server for server in servers if server is not holder]
        poll = LongPoll(rest[0][0], request_id)
        polled = poll.join()
        returned_at = datetime.now(UTC)
        status, view = get(f"{rest[1][0]}/v1/requests/{request_id}")
        assert status == 200, view

        assert (polled["status"], polled["completed"]) == ("timeout", True)
        assert returned_at - expires_at < SLACK
        assert view["status"] == "expired"
        decided_at = datetime.fromisoformat(view["decided_at"])
        assert expires_at <= decided_at < expires_at + SLACK
        successor = holder_of(database_url, rest)
        assert [line["request_id"] for line in logged(successor[2], "request expired")] == [
            request_id
        ]


def test_an_event_stream_on_one_process_carries_events_made_on_two_others(
    database_url: str, tmp_path: Path
) -> None:
    with running_servers(3, "--db", database_url, cwd=tmp_path) as servers:
        (a, _, _), (b, _, _), (c, _, _) = servers
        types = "request.created,request.response_received"
        stream = EventStream(f"{c}/v1/events?types={types}", count=2)
        request_id = create_request(a)["request_id"]
        status, body = post(f"{b}/v1/requests/{request_id}/response", {"option": "Approve"})
        assert status == 200, body
        messages = stream.join()

    assert stream.content_type == "text/event-stream"
    assert [(event, data["stream"]) for _, event, data in messages] == [
        ("request.created", f"request-{request_id}"),
        ("request.response_received", f"request-{request_id}"),
    ]
    ids = [position for position, _, _ in messages]
    assert ids == sorted(ids) and ids[0] < ids[1]
    assert [data["position"] for _, _, data in messages] == ids
