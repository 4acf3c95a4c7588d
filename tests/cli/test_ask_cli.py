"""``loopgate ask`` as a process against a real ``loopgate serve``: answers become exit codes.

0 approved, 1 answered without approval, 2 timed out, 3 cancelled or error.
Each test starts the command, waits until its question is pending on the
server, then answers (or cancels, or lets it expire) over REST.
"""

from __future__ import annotations

import contextlib
import os
import pty
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from cli_server import TIMEOUT, clean_env, get, post, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(cwd=tmp_path_factory.mktemp("ask")) as (base, _process):
        yield base


def start_ask(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "loopgate", "ask", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean_env(), **(env or {})},
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    return process.returncode, stdout, stderr


def pending_question(base: str, message: str, process: subprocess.Popen[str]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, body = get(f"{base}/v1/requests?status=pending&limit=200")
        mine = [r for r in body["requests"] if r["message"] == message]
        if mine:
            (request,) = mine
            return dict(request)
        assert process.poll() is None, finish(process)
        assert time.monotonic() < deadline, "the question never arrived"
        time.sleep(0.05)


def answer(base: str, request_id: str, option: str) -> None:
    status, body = post(f"{base}/v1/requests/{request_id}/response", {"option": option})
    assert status == 200, body


@pytest.mark.parametrize(("option", "code"), [("Ship", 0), ("Hold", 1)])
def test_the_answer_is_printed_and_becomes_the_exit_code(
    server: str, option: str, code: int
) -> None:
    message = f"Ship? ({option})"
    process = start_ask(message, "-o", "Ship", "-o", "Hold", "--server", server)
    request = pending_question(server, message, process)
    assert [o["label"] for o in request["options"]] == ["Ship", "Hold"]
    answer(server, request["request_id"], option)
    assert finish(process)[:2] == (code, f"{option}\n")


def test_an_unanswered_question_exits_2_after_its_timeout(server: str) -> None:
    started = time.monotonic()
    returncode, stdout, stderr = finish(
        start_ask(
            "Ship? (nobody)", "-o", "Ship", "-o", "Hold", "--timeout", "2", "--server", server
        )
    )
    assert (returncode, stdout) == (2, "")
    assert "expired" in stderr
    assert time.monotonic() - started >= 2


def test_a_cancelled_question_exits_3(server: str) -> None:
    message = "Ship? (cancelled)"
    process = start_ask(message, "--server", server)
    request = pending_question(server, message, process)
    status, body = post(f"{server}/v1/requests/{request['request_id']}/cancel", {})
    assert status == 200, body
    returncode, stdout, stderr = finish(process)
    assert (returncode, stdout) == (3, "")
    assert "cancelled" in stderr


def test_json_output_session_metadata_and_the_environment(server: str) -> None:
    message = "Ship? (json)"
    process = start_ask(
        message,
        "-o",
        "Ship",
        "--session",
        "release",
        "--metadata",
        "version=2.1",
        "--metadata",
        "env=prod",
        "--json",
        env={"LOOPGATE_URL": server},
    )
    request = pending_question(server, message, process)
    assert (request["session_id"], request["metadata"]) == (
        "release",
        {"version": "2.1", "env": "prod"},
    )
    answer(server, request["request_id"], "Ship")
    returncode, stdout, _ = finish(process)
    decision = msgspec.json.decode(stdout)
    assert returncode == 0
    assert decision["request_id"] == request["request_id"]
    assert (decision["status"], decision["approved"], decision["response"]) == (
        "answered",
        True,
        "Ship",
    )


@pytest.mark.parametrize(
    "args",
    [
        ("Ship?", "--server", "http://127.0.0.1:9"),  # nothing listens there
        ("Ship?", "--metadata", "no-equals-sign"),
        ("Ship?", "--timeout", "0"),
        (),
    ],
)
def test_errors_exit_3(args: tuple[str, ...]) -> None:
    returncode, stdout, stderr = finish(
        start_ask(*args, env={"LOOPGATE_URL": "http://127.0.0.1:9"})
    )
    assert (returncode, stdout) == (3, "")
    assert "loopgate ask" in stderr


def test_ask_has_help_listing_the_exit_codes() -> None:
    returncode, stdout, _ = finish(start_ask("--help"))
    assert returncode == 0
    assert "usage: loopgate ask" in stdout
    assert "0 approved, 1 answered without approval, 2 timed out, 3 cancelled or error" in (
        " ".join(stdout.split())
    )


def test_on_a_terminal_a_spinner_shows_the_time_left(server: str) -> None:
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "loopgate", "ask", "Ship? (tty)", "--timeout", "1"],
            stdout=subprocess.PIPE,
            stderr=terminal,
            text=True,
            env={**clean_env(), "LOOPGATE_URL": server},
        )
        os.close(terminal)
        drawn = b""
        with contextlib.suppress(OSError):  # EIO once the child has closed the terminal
            while chunk := os.read(controller, 4096):
                drawn += chunk
        assert process.wait(timeout=TIMEOUT) == 2
        assert process.stdout is not None
        process.stdout.close()
    finally:
        os.close(controller)
    assert "waiting for an answer, 0:01 left" in drawn.decode()
    assert "\x1b[K" in drawn.decode()  # the spinner's line is erased at the end
