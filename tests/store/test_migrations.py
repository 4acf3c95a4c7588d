"""Schema migrations: numbered files per backend, applied once, tracked in schema_migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from loopgate.config import sqlite_path
from loopgate.events import Meta, SessionRegistered
from loopgate.store import PostgresStore, SqliteStore, migrations, open_store, postgres, sqlite
from loopgate.store.migrations import migrations_for

Store = SqliteStore | PostgresStore

# The source tree's migrations/, which the installed package loopgate._migrations must mirror.
MIGRATIONS_DIR = Path(__file__).parents[2] / "migrations"
THEN = datetime(2024, 1, 1, tzinfo=UTC)


def names(backend: Any) -> list[str]:
    return [f"{m.version:03d}_{m.name}" for m in migrations_for(backend)]


@pytest.fixture
async def empty_url(store_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A URL for a database of the same backend that has never been migrated."""
    if store_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"loopgate_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(store_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(store_url)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_lists_migration_files_in_version_order() -> None:
    for backend in ("sqlite", "postgres"):
        found = migrations_for(backend)
        files = sorted(p.name for p in (MIGRATIONS_DIR / backend).glob("*.sql"))
        assert [f"{n}.sql" for n in names(backend)] == files
        assert [m.version for m in found] == list(range(1, len(found) + 1))
        assert all(m.sql.strip() for m in found)


async def test_gives_both_backends_the_same_numbered_migrations() -> None:
    assert names("sqlite") == names("postgres")


@pytest.mark.parametrize(
    ("files", "complaint"),
    [
        (["001_events.sql", "2_oops.sql"], "not named NNN_name.sql"),
        (["001_events.sql", "001_again.sql"], "duplicate migration numbers"),
    ],
)
def test_refuses_misnamed_or_duplicate_migration_files(
    files: list[str], complaint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sqlite").mkdir()
    for file in files:
        (tmp_path / "sqlite" / file).write_text("SELECT 1;\n", encoding="utf-8")
    monkeypatch.setattr(migrations.resources, "files", lambda _package: tmp_path)

    with pytest.raises(ValueError, match=complaint):
        migrations_for("sqlite")


async def test_applies_every_migration_to_an_empty_database(empty_url: str) -> None:
    store = await open_store(empty_url, migrate=False)
    try:
        applied = await store.migrate()
        assert applied == names(store.backend)
        assert await store.head() == 0
    finally:
        await store.close()


async def test_applies_migrations_once_when_two_servers_start_together(empty_url: str) -> None:
    stores = [await open_store(empty_url, migrate=False) for _ in range(2)]
    try:
        first, second = await asyncio.gather(*(s.migrate() for s in stores))
        assert sorted(first + second) == names(stores[0].backend)
    finally:
        for store in stores:
            await store.close()


async def test_migrating_a_migrated_database_is_a_no_op(store: Store) -> None:
    assert await store.migrate() == []
    assert await store.migrate() == []


async def test_records_one_row_per_migration_file(store: Store) -> None:
    await store.migrate()

    rows = await store.fetch(
        "SELECT version, name, applied_at FROM schema_migrations ORDER BY version"
    )

    assert [(r["version"], r["name"]) for r in rows] == [
        (m.version, m.name) for m in migrations_for(store.backend)
    ]
    assert all(r["applied_at"] for r in rows)


async def test_keying_sessions_by_tenant_keeps_the_rows_of_a_database_before_it(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (sqlite, postgres):
        monkeypatch.setattr(module, "migrations_for", lambda backend: migrations_for(backend)[:5])
    store = await open_store(empty_url)
    backend = store.backend
    [before] = await store.fetch("SELECT MAX(version) AS version FROM schema_migrations")
    assert before["version"] == 5  # session_id alone is the key, as before
    await store.close()
    row = (
        "INSERT INTO sessions (session_id, client_id, telegram_id, tenant, active,"
        " registered_at, version)"
        " VALUES ('deploys', 'ci', 7, 'a', TRUE, '2024-01-01T00:00:00+00:00', 1)"
    )
    if backend == "sqlite":
        with sqlite3.connect(sqlite_path(empty_url)) as conn:
            conn.execute(row)
    else:
        conn = await asyncpg.connect(empty_url)
        await conn.execute(row.replace("'2024-01-01T00:00:00+00:00'", "'2024-01-01T00:00:00Z'"))
        await conn.close()
    monkeypatch.undo()

    store = await open_store(empty_url)
    try:
        [kept] = await store.fetch("SELECT * FROM sessions")
        assert (kept["tenant"], kept["session_id"], kept["telegram_id"]) == ("a", "deploys", 7)
        # The same id in another tenant is another row now.
        registered = SessionRegistered(session_id="deploys", client_id="ci", registered_at=THEN)
        await store.append("session-b/deploys", 0, [registered], Meta(actor="bob", tenant="b"))
        rows = await store.fetch("SELECT tenant FROM sessions ORDER BY tenant")
        assert [r["tenant"] for r in rows] == ["a", "b"]
    finally:
        await store.close()


async def test_keys_in_a_database_from_before_key_kinds_become_agent_keys(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(empty_url, migrate=False)
    try:
        module = "loopgate.store.sqlite" if store.backend == "sqlite" else "loopgate.store.postgres"
        before = [m for m in migrations_for(store.backend) if m.name != "api_key_kind"]
        with monkeypatch.context() as patched:
            patched.setattr(f"{module}.migrations_for", lambda _backend: before)
            await store.migrate()
        await store.execute(
            "INSERT INTO api_keys (key_id, user_id, label, prefix, key_hash, created_at, version)"
            " VALUES ('k1', 'alice', 'ci', 'lk_pub_abcde', 'hash-1', ?, 1)",
            (datetime(2026, 1, 1, tzinfo=UTC),),
        )

        assert await store.migrate() == ["008_api_key_kind"]

        assert await store.fetch("SELECT key_id, kind FROM api_keys") == [
            {"key_id": "k1", "kind": "agent"}
        ]
    finally:
        await store.close()


async def test_the_telegram_messages_of_a_database_before_deliveries_are_its_first_deliveries(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_store(empty_url, migrate=False)
    try:
        module = "loopgate.store.sqlite" if store.backend == "sqlite" else "loopgate.store.postgres"
        before = [m for m in migrations_for(store.backend) if m.name != "deliveries"]
        with monkeypatch.context() as patched:
            patched.setattr(f"{module}.migrations_for", lambda _backend: before)
            await store.migrate()
        await store.execute(
            "INSERT INTO telegram_messages (chat_id, message_id, request_id, delivered_at)"
            " VALUES (42, 7, 'r1', ?)",
            (THEN,),
        )

        assert await store.migrate() == ["013_deliveries"]

        [row] = await store.fetch("SELECT * FROM deliveries")
        # As a rebuild from the log's RequestDelivered would make it.
        assert {k: row[k] for k in ("channel", "address", "message_id", "request_id")} == {
            "channel": "telegram",
            "address": "42",
            "message_id": "7",
            "request_id": "r1",
        }
        assert row["conversation"] is None and row["routed_by"] is None
    finally:
        await store.close()
