"""``loopgate user create`` and the auth policy at ``serve`` start, run as real processes."""

from __future__ import annotations

import asyncio
import http.cookiejar
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import msgspec
from cli_server import TIMEOUT, clean_env, free_port, get, post, running_server, stop

from loopgate.store import open_store
from loopgate.teams import Teams

SECRET = "cli-test-secret-0123456789abcdefghijklmnop"
PASSWORD = "correct horse battery staple"


def loopgate(
    *args: str, stdin: str = "", env: dict[str, str] | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopgate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**clean_env(), "LOOPGATE_LOG__FORMAT": "json", **(env or {})},
        cwd=cwd,
    )


def log_lines(output: str) -> list[dict[str, object]]:
    return [msgspec.json.decode(line) for line in output.splitlines() if line.startswith("{")]


def test_user_commands_have_help(tmp_path: Path) -> None:
    for command in (["user"], ["user", "create"]):
        result = loopgate(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "usage: loopgate user" in result.stdout


def test_serving_beyond_loopback_without_a_jwt_secret_exits_2(tmp_path: Path) -> None:
    result = loopgate("serve", "--host", "0.0.0.0", "--port", str(free_port()), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "auth.jwt_secret" in result.stderr
    assert not (tmp_path / "loopgate.db").exists()  # refused before opening anything


def test_the_placeholder_secret_is_refused_even_on_loopback(tmp_path: Path) -> None:
    env = {"LOOPGATE_AUTH__JWT_SECRET": "change-me-to-a-long-random-string-please"}
    result = loopgate("serve", "--port", str(free_port()), env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "auth.jwt_secret" in result.stderr
    assert "placeholder" in result.stderr


def test_loopback_without_a_secret_starts_open_and_says_so(tmp_path: Path) -> None:
    with running_server(cwd=tmp_path) as (base, process):
        status, _ = get(f"{base}/hitl/pending")
        assert status == 200
        output = stop(process)
    lines = log_lines(output)
    assert any("tokens will not survive a restart" in str(line["event"]) for line in lines)
    (listening,) = [line for line in lines if line["event"] == "loopgate listening"]
    assert listening["auth"] == "open (loopback)"


def test_any_address_with_a_secret_requires_keys_and_says_so(tmp_path: Path) -> None:
    (tmp_path / "loopgate.toml").write_text(f'[auth]\njwt_secret = "{SECRET}"\n')
    with running_server("--host", "0.0.0.0", cwd=tmp_path) as (base, process):
        assert get(f"{base}/health")[0] == 200
        status, body = get(f"{base}/hitl/pending")
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        output = stop(process)
    (listening,) = [line for line in log_lines(output) if line["event"] == "loopgate listening"]
    assert listening["auth"] == "api keys required"


def test_the_environment_variable_requires_keys_on_loopback(tmp_path: Path) -> None:
    env = {"LOOPGATE_AUTH__REQUIRE_API_KEY": "true"}
    with running_server(cwd=tmp_path, env=env) as (base, process):
        status, body = get(f"{base}/hitl/pending")
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        status, body = post(f"{base}/hitl/register", {"session_id": "s", "client_id": "c"})
        assert status == 401
        assert get(f"{base}/healthz")[0] == 200
        output = stop(process)
    (listening,) = [line for line in log_lines(output) if line["event"] == "loopgate listening"]
    assert listening["auth"] == "api keys required"


def test_user_create_then_login_with_registration_closed(
    fresh_database_url: str, tmp_path: Path
) -> None:
    db = ("--db", fresh_database_url)
    created = loopgate("user", "create", "alice", *db, stdin=PASSWORD + "\n", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    user_id = created.stdout.strip()
    assert user_id and "\n" not in user_id

    (tmp_path / "loopgate.toml").write_text(
        f'[auth]\nregistration = "closed"\njwt_secret = "{SECRET}"\nrequire_api_key = "true"\n'
    )
    with running_server(*db, cwd=tmp_path) as (base, _):
        status, body = post(
            f"{base}/api/auth/register", {"username": "mallory", "password": "x" * 12}
        )
        assert (status, body["error"]["code"]) == (403, "registration_closed")
        status, body = post(f"{base}/api/auth/login", {"username": "alice", "password": PASSWORD})
        assert status == 200, body
        assert (body["user_id"], body["username"]) == (user_id, "alice")
        # The token opens the key routes; the key opens the HITL routes.
        token = body["token"]
        request = urllib.request.Request(
            f"{base}/api/user/apikeys",
            data=b'{"label": "cli"}',
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 201
            raw_key = msgspec.json.decode(response.read())["raw_key"]
        pending = urllib.request.Request(f"{base}/hitl/pending", headers={"X-API-Key": raw_key})
        with urllib.request.urlopen(pending, timeout=5) as response:
            assert response.status == 200


def test_user_create_refuses_a_taken_name_and_a_short_password(tmp_path: Path) -> None:
    first = loopgate("user", "create", "bob", stdin=PASSWORD + "\n", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = loopgate("user", "create", "bob", stdin=PASSWORD + "\n", cwd=tmp_path)
    assert again.returncode == 1
    assert "taken" in again.stderr
    short = loopgate("user", "create", "carol", stdin="abcde\n", cwd=tmp_path)
    assert short.returncode == 2
    assert "password" in short.stderr
    empty = loopgate("user", "create", "dave", stdin="", cwd=tmp_path)
    assert empty.returncode == 2
    assert "password" in empty.stderr


def test_a_user_made_on_the_command_line_signs_in_at_the_console_url_serve_logs(
    tmp_path: Path,
) -> None:
    created = loopgate("user", "create", "alice", stdin=PASSWORD + "\n", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    browser = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    env = {"LOOPGATE_AUTH__JWT_SECRET": SECRET}
    with running_server(cwd=tmp_path, env=env) as (base, process):
        with browser.open(f"{base}/console", timeout=5) as signed_out:
            assert signed_out.url == f"{base}/console/login"  # redirected, then followed
            token = re.search(r'name="csrf_token" value="([^"]+)"', signed_out.read().decode())
        assert token is not None
        form = {"csrf_token": token.group(1), "username": "alice", "password": PASSWORD}
        data = urllib.parse.urlencode(form).encode()
        with browser.open(f"{base}/console/login", data=data, timeout=5) as queue:
            assert queue.url == f"{base}/console"
            assert "Signed in as" in queue.read().decode()
        output = stop(process)
    (listening,) = [line for line in log_lines(output) if line["event"] == "loopgate listening"]
    assert listening["console"] == f"{base}/console"


# --- workspaces: the first user owns the default one, --role joins it ---------------------


async def memberships(url: str, *user_ids: str) -> list[tuple[str, str] | None]:
    """(workspace id, role) of each user, read from the store as the server would."""
    store = await open_store(url)
    try:
        teams = Teams(store)
        found = [await teams.membership(user_id) for user_id in user_ids]
    finally:
        await store.close()
    return [None if m is None else (m.workspace_id, m.role) for m in found]


def test_user_create_help_says_who_owns_the_default_workspace(tmp_path: Path) -> None:
    result = loopgate("user", "create", "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "--role {approver,admin,auditor}" in text
    assert "first user becomes owner of the default workspace (local)" in text


def test_the_first_user_owns_local_and_role_joins_it(
    fresh_database_url: str, tmp_path: Path
) -> None:
    db = ("--db", fresh_database_url)
    made = {}
    for name, role in (("alice", None), ("bob", "approver"), ("carol", "auditor"), ("dan", None)):
        extra = ("--role", role) if role else ()
        result = loopgate("user", "create", name, *extra, *db, stdin=PASSWORD + "\n", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        made[name] = result.stdout.strip()
        (line,) = [e for e in log_lines(result.stderr) if e["event"] == "user created"]
        assert line["user_id"] == made[name]
    found = asyncio.run(memberships(fresh_database_url, *made.values()))
    assert found == [
        ("local", "owner"),
        ("local", "approver"),
        ("local", "auditor"),
        (made["dan"], "owner"),  # no role: a workspace of their own
    ]


def test_a_first_user_with_a_role_still_owns_local(tmp_path: Path) -> None:
    result = loopgate(
        "user", "create", "erin", "--role", "auditor", stdin=PASSWORD + "\n", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    url = f"sqlite:///{tmp_path / 'loopgate.db'}"
    assert asyncio.run(memberships(url, result.stdout.strip())) == [("local", "owner")]


def test_user_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = loopgate(
        "user", "create", "frank", "--role", "owner", stdin=PASSWORD + "\n", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "invalid choice: 'owner'" in result.stderr
    assert not (tmp_path / "loopgate.db").exists()
