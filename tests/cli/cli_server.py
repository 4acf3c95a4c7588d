"""Helpers to run ``loopgate`` as a real process, shared by the CLI tests.

Imported as ``from cli_server import ...``: ``tests/`` has no ``__init__.py``,
so pytest puts this directory on ``sys.path`` for the modules collected here.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec

TIMEOUT = 30


def clean_env() -> dict[str, str]:
    # The reference's variable names would leak into the child's configuration.
    ignored = ("LOOPGATE_", "SERVER_PORT", "DB_", "STORAGE_", "POSTGRES_DSN", "SQLITE_DSN", "LOG_")
    return {k: v for k, v in os.environ.items() if not k.startswith(ignored)}


def telegram_env(api_base: str, token: str, secret: str) -> dict[str, str]:
    """A server in Telegram webhook mode against the Bot API at ``api_base``, retrying fast."""
    return {
        "TELEGRAM_BOT_TOKEN": token,
        "LOOPGATE_TELEGRAM__API_BASE": api_base,
        "LOOPGATE_TELEGRAM__MODE": "webhook",
        "LOOPGATE_TELEGRAM__WEBHOOK_SECRET": secret,
        "LOOPGATE_TELEGRAM__RETRY_SECONDS": "0.1",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str, timeout: float = 5) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, msgspec.json.decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, msgspec.json.decode(error.read())


def post(url: str, body: Any, timeout: float = 5) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=msgspec.json.encode(body),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, msgspec.json.decode(response.read())
    except urllib.error.HTTPError as error:
        return error.code, msgspec.json.decode(error.read())


def spawn_server(
    *args: str, cwd: Path, env: dict[str, str] | None = None, output: Path | None = None
) -> tuple[str, subprocess.Popen[str]]:
    """Start ``loopgate serve`` on a free port; its output is piped, or written to ``output``."""
    port = free_port()
    sink: Any = subprocess.PIPE if output is None else output.open("w")
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopgate", "serve", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            text=True,
            env={**clean_env(), "LOOPGATE_LOG__FORMAT": "json", **(env or {})},
            cwd=cwd,
        )
    finally:
        if output is not None:
            sink.close()  # the child has its own copy
    return f"http://127.0.0.1:{port}", process


def wait_until_up(base: str, process: subprocess.Popen[str], log: Path | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            get(f"{base}/healthz")
            return
        except OSError as exc:
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.communicate()[0] if log is None else log.read_text()
                raise AssertionError(f"server did not start:\n{output}") from exc
            time.sleep(0.05)


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


@contextmanager
def running_server(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``loopgate serve`` on a free port, yielded once it answers; killed on exit if still up.

    ``env`` adds variables (``LOOPGATE_AUTH__REQUIRE_API_KEY``, ...) to a clean environment.
    """
    base, process = spawn_server(*args, cwd=cwd, env=env)
    try:
        wait_until_up(base, process)
        yield base, process
    finally:
        kill(process)


@contextmanager
def running_servers(
    count: int, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[list[tuple[str, subprocess.Popen[str], Path]]]:
    """``count`` servers started at once, each logging to its own file: (base, process, log)."""
    servers = []
    try:
        for index in range(count):
            log = cwd / f"server-{index}.log"
            servers.append((*spawn_server(*args, cwd=cwd, env=env, output=log), log))
        for base, process, log in servers:
            wait_until_up(base, process, log)
        yield servers
    finally:
        for _, process, _ in servers:
            kill(process)


def stop(process: subprocess.Popen[str]) -> str:
    """SIGTERM, wait for a clean exit, and return everything the server printed."""
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=15)
    assert process.returncode == 0, output
    return output


def create_request(base: str, timeout_seconds: int = 60) -> dict[str, Any]:
    """Register session ``s1`` and open a confirmation request on it over HTTP."""
    status, body = post(
        f"{base}/hitl/register", {"session_id": "s1", "client_id": "agent", "telegram_id": 1}
    )
    assert status == 200, body
    status, body = post(
        f"{base}/v1/requests",
        {
            "session_id": "s1",
            "client_id": "agent",
            "message": "Deploy?",
            "request_type": "confirmation",
            "timeout_seconds": timeout_seconds,
        },
    )
    assert status == 201, body
    assert body["status"] == "pending"
    return dict(body)
