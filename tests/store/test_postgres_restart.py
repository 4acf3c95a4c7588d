"""A Postgres restart loses no write: parked waiters get the next answer, once.

Runs against a throwaway cluster of its own (``initdb`` and ``pg_ctl`` on a
free port under a temporary directory), so restarting it disturbs nothing
else. Without the Postgres server binaries the test skips, with the reason;
with ``CI=true`` it fails instead, like every Postgres case.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from loopgate.config import Config, RequestsConfig, StreamConfig
from loopgate.events import ResponseReceived
from loopgate.store import open_store
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
pytestmark = pytest.mark.postgres
Client = TestClient[Any, Any]


def _postgres_bin() -> Path | None:
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / "initdb").exists() and (root / "pg_ctl").exists():
            return root
    found = shutil.which("pg_ctl")
    return Path(found).parent if found and shutil.which("initdb") else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """A Postgres cluster in ``directory``, run as the ``postgres`` user when we are root."""

    def __init__(self, binaries: Path, directory: Path) -> None:
        self.binaries, self.directory = binaries, directory
        self.data, self.port = directory / "data", _free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        argv = [str(self.binaries / command[0]), *command[1:]]
        if os.geteuid() == 0:  # initdb refuses to run as root
            argv = ["runuser", "-u", "postgres", "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, argv, done.stdout, done.stderr)

    def init(self) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    binaries = _postgres_bin()
    if binaries is None or (os.geteuid() == 0 and not _has_postgres_user()):
        reason = "no Postgres server binaries (initdb, pg_ctl) to start a throwaway cluster"
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: Postgres cases must run, not skip)")
        pytest.skip(reason)
    # Not under pytest's root-only temp dir: the postgres user must reach it.
    directory = Path(tempfile.mkdtemp(prefix="loopgate-pg-restart-"))
    cluster = Cluster(binaries, directory)
    cluster.init()
    cluster.start()
    yield cluster
    with contextlib.suppress(subprocess.CalledProcessError):  # a failing test stopped it
        cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


def _has_postgres_user() -> bool:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return False
    return True


@pytest.fixture
async def cluster_store(cluster: Cluster) -> AsyncIterator[EventStore]:
    store = await open_store(cluster.url)
    yield store
    await store.close()


@pytest.fixture
async def restart_client(
    aiohttp_client: Callable[..., Awaitable[Client]], cluster_store: EventStore
) -> Client:
    config = Config(requests=RequestsConfig(max_wait_seconds=60), stream=StreamConfig(1))
    return await aiohttp_client(create_app(config, store=cluster_store))


async def _sse_events(client: Client, path: str, found: list[str]) -> None:
    async with client.get(path, headers={"Accept": "text/event-stream"}) as response:
        assert response.status == 200
        async for raw in response.content:
            line = raw.decode().strip()
            if line.startswith("event:"):
                found.append(line.partition(":")[2].strip())


async def _until(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_after_a_restart_the_next_answer_succeeds_and_every_waiter_gets_it_once(
    cluster: Cluster, restart_client: Client, cluster_store: EventStore
) -> None:
    client = restart_client
    session = {"session_id": "restart-bot", "client_id": "ci"}
    assert (await client.post("/v1/sessions", json=session)).status == 201
    created = await client.post(
        "/v1/requests", json={**session, "message": "Deploy?", "options": ["Deploy", "Hold"]}
    )
    request_id = (await created.json())["request_id"]

    long_poll = asyncio.create_task(client.get(f"/v1/requests/{request_id}?wait=60"))
    streamed: list[str] = []
    stream = asyncio.create_task(_sse_events(client, f"/v1/requests/{request_id}/events", streamed))
    await _until(lambda: _true_after(streamed, "request.created"))

    await asyncio.to_thread(cluster.stop)
    down = await client.get("/readyz")
    assert down.status == 503, await down.text()
    assert (await down.json())["error"]["code"] == "store_unavailable"
    await asyncio.to_thread(cluster.start)

    # The first write after the restart: it must not fail on a connection the
    # restart broke.
    answered = await client.post(f"/v1/requests/{request_id}/response", json={"option": "Deploy"})
    assert answered.status == 200, await answered.text()
    assert (await client.get("/readyz")).status == 200

    polled = await asyncio.wait_for(long_poll, 30)
    assert polled.status == 200
    assert (await polled.json())["status"] == "answered"
    await _until(lambda: _true_after(streamed, "request.response_received"))
    stream.cancel()

    history = await cluster_store.read_stream(f"request-{request_id}")
    assert [isinstance(r.event, ResponseReceived) for r in history].count(True) == 1
    assert streamed.count("request.response_received") == 1


async def _true_after(found: list[str], event: str) -> bool:
    return event in found
