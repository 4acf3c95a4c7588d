"""The ``loopgate`` command, run as a user would: a real process, real databases."""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
from cli_server import TIMEOUT, clean_env, free_port, get, running_server

from loopgate import __version__


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "loopgate", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**clean_env(), **(env or {})},
        cwd=cwd,
    )


def test_version_prints_the_package_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"loopgate {__version__}"


def test_every_command_has_help() -> None:
    for command in ([], ["serve"], ["migrate"], ["projections"], ["projections", "rebuild"]):
        result = run_cli(*command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: loopgate" in result.stdout


def test_a_bad_port_stops_the_start_naming_the_key(tmp_path: Path) -> None:
    result = run_cli("serve", env={"LOOPGATE_SERVER__PORT": "abc"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "'abc'" in result.stderr
    assert not (tmp_path / "loopgate.db").exists()


def test_an_unsupported_database_url_fails_at_start(tmp_path: Path) -> None:
    result = run_cli("serve", "--db", "mysql://root@127.0.0.1/loopgate", cwd=tmp_path)
    assert result.returncode == 2
    assert "database.url" in result.stderr
    assert "mysql" in result.stderr


def test_an_unreachable_database_fails_with_exit_code_1(tmp_path: Path) -> None:
    result = run_cli("migrate", "--db", f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    assert result.returncode == 1
    assert "cannot connect to Postgres" in result.stderr


def test_migrate_applies_then_is_a_no_op(fresh_database_url: str, tmp_path: Path) -> None:
    env = {"LOOPGATE_LOG__FORMAT": "json"}
    first = run_cli("migrate", "--db", fresh_database_url, env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "migrations applied" in first.stderr
    assert "001_events" in first.stderr
    assert '"level": "warning"' not in first.stderr  # no listener racing the schema
    second = run_cli("migrate", "--db", fresh_database_url, env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "schema up to date" in second.stderr


def test_projections_rebuild_exits_0(fresh_database_url: str, tmp_path: Path) -> None:
    result = run_cli("projections", "rebuild", "--db", fresh_database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "projections rebuilt" in result.stderr


def test_serve_on_a_migrated_database_is_ready(fresh_database_url: str, tmp_path: Path) -> None:
    assert run_cli("migrate", "--db", fresh_database_url).returncode == 0
    with running_server("--db", fresh_database_url, "--no-migrate", cwd=tmp_path) as (base, _):
        status, body = get(f"{base}/readyz")
        assert status == 200
        assert body["status"] == "ready"


def test_serve_defaults_to_sqlite_in_the_working_directory(tmp_path: Path) -> None:
    with running_server(cwd=tmp_path) as (base, _):
        status, body = get(f"{base}/health")
        assert (status, body["status"], body["service"]) == (200, "healthy", "loopgate")
        assert (tmp_path / "loopgate.db").exists()


def test_serve_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with running_server(cwd=tmp_path) as (_, process):
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
        assert process.returncode == 0, output
        assert "shutting down" in output
        assert "stopped" in output


def test_log_lines_carry_the_request_id(tmp_path: Path) -> None:
    with running_server(cwd=tmp_path) as (base, process):
        request = urllib.request.Request(f"{base}/health", headers={"X-Request-ID": "trace-77"})
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["X-Request-ID"] == "trace-77"
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=15)
    lines = [msgspec.json.decode(line) for line in output.splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("path") == "/health"]
    assert access
    assert access[0]["request_id"] == "trace-77"
    assert access[0]["status"] == 200
