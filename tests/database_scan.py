"""What a test database holds, as text: for scans that prove a secret is not stored."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from loopgate.config import sqlite_path


async def database_contents(store_url: str) -> str:
    """Everything the database holds, as text: the SQLite files' bytes, or every Postgres row."""
    if store_url.startswith("sqlite"):
        path = Path(sqlite_path(store_url))
        files = [path, path.with_name(path.name + "-wal")]
        assert files[1].exists()  # the recent writes are still in the write-ahead log
        return "".join(f.read_bytes().decode("latin-1") for f in files)
    conn = await asyncpg.connect(store_url)
    try:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
        )
        assert {"events", "users", "api_keys"} <= {t["table_name"] for t in tables}
        rows = [
            row[0]
            for t in tables
            for row in await conn.fetch(f'SELECT t::text FROM "{t["table_name"]}" AS t')
        ]
        return "\n".join(rows)
    finally:
        await conn.close()
