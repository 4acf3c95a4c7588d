"""``loopgate audit export|verify`` and ``projections rebuild``, run as real processes.

The activity is written in-process through the command handlers (the store is closed
before the command runs), then the command reads the same database, on SQLite
and on Postgres.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import os
import pty
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from cli_server import TIMEOUT, clean_env

from loopgate.accounts.users import AccountService
from loopgate.channels.webhooks.secrets import SecretBox, WebhookSecrets
from loopgate.commands.base import Actor, utcnow
from loopgate.commands.requests import Requests
from loopgate.commands.sessions import Sessions, session_stream
from loopgate.config import sqlite_path
from loopgate.domain.teams import ANY_PRINCIPAL
from loopgate.hub import Hub
from loopgate.store import open_store

MESSAGE = 'Deploy, "now"\nto Zürich ✓'
# Stored as-is in the actor column, so the CSV must quote a real comma, quote and newline.
ALICE_ID = 'alice, "the admin"\nZürich ✓'
ANYONE = frozenset({ANY_PRINCIPAL})  # routing is tested in tests/web/test_role_matrix.py
ALICE = Actor(id=ALICE_ID, tenant="a", answers_as=ALICE_ID, role="approver", principals=ANYONE)
BOB = Actor(id="bob", tenant="b", answers_as="bob", role="approver", principals=ANYONE)


@dataclass
class Activity:
    answered: str
    cancelled: str
    pending: str
    other_session_request: str


def run_cli(*args: str, cwd: Path, **options: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopgate", *args],
        text=True,
        timeout=TIMEOUT,
        env={**clean_env(), "LOOPGATE_LOG__FORMAT": "json"},
        cwd=cwd,
        **({"capture_output": True} | options),
    )


async def _with_service(url: str, work: Any) -> Any:
    store = await open_store(url)
    try:
        return await work(Requests(store, Hub(store), Sessions(store)))
    finally:
        await store.close()


def create_activity(url: str) -> Activity:
    async def work(service: Requests) -> Activity:
        await service.sessions.register_session("s1", "agent", None, ALICE)
        await service.sessions.register_session("s2", "agent", None, ALICE)
        await service.sessions.register_session("sb", "agent", None, BOB)

        async def ask(session: str, actor: Actor = ALICE, message: str = "Go?") -> str:
            view, _ = await service.create_request(
                session_id=session,
                client_id="agent",
                message=message,
                request_type="confirmation",
                actor=actor,
            )
            return view.request_id

        answered = await ask("s1", message=MESSAGE)
        cancelled = await ask("s1")
        pending = await ask("s1")
        other = await ask("s2")
        await ask("sb", BOB)
        await service.answer(answered, option="Approve", channel="api", actor=ALICE)
        await service.cancel(cancelled, "changed my mind", ALICE)
        return Activity(answered, cancelled, pending, other)

    result: Activity = asyncio.run(_with_service(url, work))
    return result


def add_request(url: str) -> None:
    async def work(service: Requests) -> None:
        await service.create_request(
            session_id="s2",
            client_id="agent",
            message="Later",
            request_type="confirmation",
            actor=ALICE,
        )

    asyncio.run(_with_service(url, work))


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def export(url: str, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    result = run_cli("audit", "export", "--db", url, *args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # quiet when stderr is not a terminal
    return records(result.stdout)


def sql(url: str, statement: str, *params: Any) -> None:
    """Change the database behind the store's back."""
    if url.startswith("sqlite"):
        with sqlite3.connect(sqlite_path(url)) as conn:
            conn.execute(statement.replace("$1", "?"), params)
        return

    async def run() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(statement, *params)
        finally:
            await conn.close()

    asyncio.run(run())


def position_of(rows: list[dict[str, Any]], request_id: str, type_: str) -> int:
    (position,) = [
        r["position"] for r in rows if r["stream"] == f"request-{request_id}" and r["type"] == type_
    ]
    return int(position)


# --- export -------------------------------------------------------------------


def test_export_ndjson_is_the_whole_log_in_order(fresh_database_url: str, tmp_path: Path) -> None:
    activity = create_activity(fresh_database_url)
    rows = export(fresh_database_url, tmp_path)
    positions = [r["position"] for r in rows]
    assert positions == list(range(1, len(rows) + 1))  # every event, every tenant, in order
    assert {r["tenant"] for r in rows} == {"a", "b"}
    answered = [r for r in rows if r["stream"] == f"request-{activity.answered}"]
    assert [r["type"] for r in answered] == ["request.created", "request.response_received"]
    assert answered[0]["data"]["message"] == MESSAGE
    assert answered[0]["actor"] == ALICE.id
    assert answered[1]["channel"] == "api"
    assert all(r["prev_hash"] and r["hash"] for r in rows)
    assert rows[1]["prev_hash"] == rows[0]["hash"]


def test_export_filters(fresh_database_url: str, tmp_path: Path) -> None:
    activity = create_activity(fresh_database_url)
    url = fresh_database_url

    created = export(url, tmp_path, "--types", "request.created, request.cancelled")
    assert {r["type"] for r in created} == {"request.created", "request.cancelled"}
    assert len([r for r in created if r["type"] == "request.created"]) == 5

    one = export(url, tmp_path, "--request", activity.answered)
    assert {r["stream"] for r in one} == {f"request-{activity.answered}"}
    assert [r["type"] for r in one] == ["request.created", "request.response_received"]

    session = export(url, tmp_path, "--session", "s1")
    expected = {session_stream("a", "s1")} | {
        f"request-{rid}" for rid in (activity.answered, activity.cancelled, activity.pending)
    }
    assert {r["stream"] for r in session} == expected
    assert [r["position"] for r in session] == sorted(r["position"] for r in session)

    tenant = export(url, tmp_path, "--tenant", "b")
    assert tenant
    assert {r["tenant"] for r in tenant} == {"b"}

    assert export(url, tmp_path, "--since", "2999-01-01") == []
    everything = export(url, tmp_path)
    assert len(export(url, tmp_path, "--since", "2000-01-01T00:00:00Z")) == len(everything)
    assert export(url, tmp_path, "--until", "2000-01-01") == []


def test_export_refuses_bad_input_with_exit_2(fresh_database_url: str, tmp_path: Path) -> None:
    url = fresh_database_url
    cases = [
        (("--since", "yesterday"), "--since"),
        (("--until", "2025-13-01"), "--until"),
        (("--types", "request.creatd"), "request.creatd"),
        (("--since", "2025-02-01", "--until", "2025-01-01"), "--since must be before --until"),
        (("--session", "s1", "--request", "r1"), "not allowed with"),
        (("--format", "xml"), "--format"),
        (("-o", str(tmp_path / "missing" / "out.ndjson")), "cannot write"),
    ]
    for args, message in cases:
        result = run_cli("audit", "export", "--db", url, *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert result.stdout == ""


def test_export_csv_round_trips_through_a_csv_reader(
    fresh_database_url: str, tmp_path: Path
) -> None:
    activity = create_activity(fresh_database_url)
    out = tmp_path / "audit.csv"
    result = run_cli(
        "audit", "export", "--db", fresh_database_url, "--format", "csv", "-o", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ndjson = export(fresh_database_url, tmp_path)
    assert result.stderr.strip() == f"exported {len(ndjson)} events to {out}"
    with out.open(newline="", encoding="utf-8") as file:
        header, *rows = list(csv.reader(file))
    assert header[:5] == ["position", "recorded_at", "stream", "version", "type"]
    assert len(rows) == len(ndjson)
    column = {name: index for index, name in enumerate(header)}
    for row, record in zip(rows, ndjson, strict=True):
        assert int(row[column["position"]]) == record["position"]
        assert row[column["actor"]] == record["actor"]
        assert json.loads(row[column["data"]]) == record["data"]
        assert json.loads(row[column["meta"]]) == record["meta"]
        assert row[column["hash"]] == record["hash"]
    created = next(
        row
        for row in rows
        if row[column["stream"]] == f"request-{activity.answered}"
        and row[column["type"]] == "request.created"
    )
    assert created[column["actor"]] == ALICE.id  # comma, quotes, newline, non-ASCII: exact
    assert json.loads(created[column["data"]])["message"] == MESSAGE


def test_an_export_file_appears_only_once_complete(fresh_database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.ndjson"
    out.write_text("an older, complete export\n")
    unreachable = f"sqlite:///{tmp_path / 'no' / 'such' / 'dir' / 'loopgate.db'}"

    failed = run_cli("audit", "export", "--db", unreachable, "-o", str(out), cwd=tmp_path)

    assert failed.returncode == 1, failed.stderr
    assert out.read_text() == "an older, complete export\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.ndjson"]

    create_activity(fresh_database_url)
    done = run_cli("audit", "export", "--db", fresh_database_url, "-o", str(out), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["position"] for line in out.read_text().splitlines()][:1] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.ndjson"]


def test_export_csv_has_its_header_when_nothing_matches(
    fresh_database_url: str, tmp_path: Path
) -> None:
    create_activity(fresh_database_url)
    result = run_cli(
        "audit", "export", "--db", fresh_database_url, "--format", "csv", "--since", "2999-01-01",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "position,recorded_at,stream,version,type,actor,tenant,channel,data,meta,prev_hash,hash,"
        "digests,legacy"
    ]


def test_progress_is_shown_on_a_terminal(fresh_database_url: str, tmp_path: Path) -> None:
    create_activity(fresh_database_url)
    out = tmp_path / "audit.ndjson"
    controller, terminal = pty.openpty()
    try:
        result = run_cli(
            "audit", "export", "--db", fresh_database_url, "-o", str(out),
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=terminal, capture_output=False,
        )  # fmt: skip
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal has no writer left
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if terminal != -1:
            os.close(terminal)
        os.close(controller)
    assert result.returncode == 0
    count = len(out.read_text().splitlines())
    text = shown.decode()
    assert f"\r exported {count} events…" in text
    assert text.rstrip().endswith(f"exported {count} events to {out}")


# --- verify the log -------------------------------------------------------------


def test_verify_the_log(fresh_database_url: str, tmp_path: Path) -> None:
    create_activity(fresh_database_url)
    total = len(export(fresh_database_url, tmp_path))
    result = run_cli("audit", "verify", "--db", fresh_database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"ok: {total} events, head ")
    assert result.stdout.splitlines()[-1].endswith("rows, match the log")
    assert result.stderr == ""


def test_verify_names_a_hand_edited_query_table_row(
    fresh_database_url: str, tmp_path: Path
) -> None:
    activity = create_activity(fresh_database_url)
    sql(
        fresh_database_url,
        "UPDATE requests SET status = 'pending' WHERE request_id = $1",
        activity.answered,
    )
    result = run_cli("audit", "verify", "--db", fresh_database_url, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("ok: ")  # the chain itself is intact
    assert (
        f"query tables differ from the log: requests row request_id={activity.answered!r}:"
        " status is 'pending' in the table, 'answered' from the log"
    ) in result.stdout


def test_verify_finds_an_edited_event(fresh_database_url: str, tmp_path: Path) -> None:
    activity = create_activity(fresh_database_url)
    rows = export(fresh_database_url, tmp_path)
    position = position_of(rows, activity.answered, "request.created")
    if fresh_database_url.startswith("sqlite"):
        statement = "UPDATE events SET data = replace(data, 'Zürich', 'Zurich') WHERE position = $1"
    else:
        statement = (
            "UPDATE events SET data = jsonb_set(data, '{message}', '\"Deploy\"')"
            " WHERE position = $1"
        )
    sql(fresh_database_url, statement, position)
    result = run_cli("audit", "verify", "--db", fresh_database_url, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"broken at position {position}: "), result.stdout
    assert "does not match its hash" in result.stdout


def test_verify_finds_a_deleted_event(fresh_database_url: str, tmp_path: Path) -> None:
    create_activity(fresh_database_url)
    rows = export(fresh_database_url, tmp_path)
    middle = rows[len(rows) // 2]["position"]
    sql(fresh_database_url, "DELETE FROM events WHERE position = $1", middle)
    result = run_cli("audit", "verify", "--db", fresh_database_url, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"broken at position {middle}: "), result.stdout
    assert "missing" in result.stdout


# --- verify an export ------------------------------------------------------------


def test_verify_an_export_file(fresh_database_url: str, tmp_path: Path) -> None:
    activity = create_activity(fresh_database_url)
    url = fresh_database_url
    out = tmp_path / "audit.ndjson"
    assert run_cli("audit", "export", "--db", url, "-o", str(out), cwd=tmp_path).returncode == 0
    rows = records(out.read_text(encoding="utf-8"))
    last = rows[-1]["position"]

    checked = run_cli("audit", "verify", "--file", str(out), "--db", url, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.strip() == f"ok: {len(rows)} events in {out}, head {rows[-1]['hash']}"

    compare = ("audit", "verify", "--compare", "--db", url, "--file")
    compared = run_cli(*compare, str(out), cwd=tmp_path)
    assert compared.returncode == 0, compared.stdout + compared.stderr
    assert f"matches the live log at position {last}" in compared.stdout

    # The log grows: the file is still a prefix of it.
    add_request(url)
    assert len(export(url, tmp_path)) > len(rows)
    later = run_cli(*compare, str(out), cwd=tmp_path)
    assert later.returncode == 0, later.stdout + later.stderr
    assert f"matches the live log at position {last}" in later.stdout

    # A filtered export verifies too, and compares at its own last position.
    part = tmp_path / "request.ndjson"
    exported = run_cli(
        "audit", "export", "--db", url, "--request", activity.answered, "-o", str(part),
        cwd=tmp_path,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    part_last = records(part.read_text())[-1]["position"]
    checked = run_cli(*compare, str(part), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"matches the live log at position {part_last}" in checked.stdout


def test_verify_finds_an_edited_export(fresh_database_url: str, tmp_path: Path) -> None:
    activity = create_activity(fresh_database_url)
    out = tmp_path / "audit.ndjson"
    run_cli("audit", "export", "--db", fresh_database_url, "-o", str(out), cwd=tmp_path)
    lines = out.read_bytes().splitlines(keepends=True)
    position = position_of(records(out.read_text()), activity.answered, "request.created")
    index = position - 1  # a full export: line n is position n
    edited = lines[index].replace(b"Deploy", b"Deplog", 1)
    assert edited != lines[index]
    json.loads(edited)  # still a valid record
    out.write_bytes(b"".join([*lines[:index], edited, *lines[index + 1 :]]))

    result = run_cli("audit", "verify", "--file", str(out), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(f"broken at position {position} in {out}: "), result.stdout


def test_compare_finds_a_file_that_differs_from_the_log(
    fresh_database_url: str, tmp_path: Path
) -> None:
    create_activity(fresh_database_url)
    out = tmp_path / "audit.ndjson"
    run_cli("audit", "export", "--db", fresh_database_url, "-o", str(out), cwd=tmp_path)
    last = records(out.read_text())[-1]["position"]
    sql(fresh_database_url, "DELETE FROM events WHERE position = $1", last)  # the live log lost it
    result = run_cli(
        "audit", "verify", "--file", str(out), "--compare", "--db", fresh_database_url,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"differs from the live log at position {last}" in result.stdout


def test_verify_usage_errors(tmp_path: Path) -> None:
    result = run_cli("audit", "verify", "--compare", "--db", "sqlite:///x.db", cwd=tmp_path)
    assert result.returncode == 2
    assert "--compare needs --file" in result.stderr
    result = run_cli("audit", "verify", "--file", str(tmp_path / "nope.ndjson"), cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot read" in result.stderr


def test_audit_commands_have_help() -> None:
    for command in (["audit"], ["audit", "export"], ["audit", "verify"]):
        result = run_cli(*command, "--help", cwd=Path.cwd())
        assert result.returncode == 0, result.stderr
        assert "usage: loopgate audit" in result.stdout


# --- projections rebuild ----------------------------------------------------------


def requests_table(url: str) -> list[dict[str, Any]]:
    async def work(service: Requests) -> list[dict[str, Any]]:
        return await service.store.fetch("SELECT * FROM requests ORDER BY request_id")

    rows: list[dict[str, Any]] = asyncio.run(_with_service(url, work))
    return rows


def test_rebuild_keeps_every_answer(fresh_database_url: str, tmp_path: Path) -> None:
    activity = create_activity(fresh_database_url)
    before = requests_table(fresh_database_url)
    assert {row["status"] for row in before} == {"answered", "cancelled", "pending"}
    result = run_cli("projections", "rebuild", "--db", fresh_database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "projections rebuilt" in result.stderr
    assert requests_table(fresh_database_url) == before

    async def poll(service: Requests) -> tuple[str, str]:
        answered = await service.get_request(activity.answered, ALICE)
        cancelled = await service.get_request(activity.cancelled, ALICE)
        return answered.status, cancelled.status

    assert asyncio.run(_with_service(fresh_database_url, poll)) == ("answered", "cancelled")


@pytest.mark.parametrize("events", [3, 12])
def test_rebuild_reports_progress(fresh_database_url: str, events: int) -> None:
    async def work(service: Requests) -> tuple[int, list[int]]:
        for number in range(events):
            await service.sessions.register_session(f"s{number}", "agent", None, ALICE)
        seen: list[int] = []
        replayed = await service.store.rebuild_projections(seen.append)
        return replayed, seen

    replayed, seen = asyncio.run(_with_service(fresh_database_url, work))
    assert replayed == events
    assert seen == [events]  # one batch: called once, with the running total


def test_an_exported_file_holds_no_secret_and_verifies(
    fresh_database_url: str, tmp_path: Path
) -> None:
    async def work() -> tuple[str, str]:
        store = await open_store(fresh_database_url)
        try:
            accounts = AccountService(store, jwt_secret="x" * 32)
            user = await accounts.register_user("alice", "Zebra-Quartz-7781-unmistakable")
            raw_key, _ = await accounts.create_api_key(await accounts.actor_for_user(user.user_id))
            box = SecretBox(lambda: bytes(32))
            return raw_key, await WebhookSecrets(store, utcnow, box).current(user.user_id)
        finally:
            await store.close()

    raw_key, webhook_secret = asyncio.run(work())
    key_hash = hashlib.sha256(raw_key.encode()).hexdigest()
    for fmt in ("ndjson", "csv"):
        out = tmp_path / f"audit.{fmt}"
        exported = run_cli(
            "audit", "export", "--db", fresh_database_url, "--format", fmt, "-o", str(out),
            cwd=tmp_path,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        text = out.read_text(encoding="utf-8")
        assert "user.registered" in text and "[redacted]" in text
        for secret in ("$argon2", key_hash, webhook_secret, "whsec_"):
            assert secret not in text
    checked = run_cli("audit", "verify", "--file", str(tmp_path / "audit.ndjson"), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(
        "ok: 5 events"
    )  # registration (3), key, secret, checked.stdout
