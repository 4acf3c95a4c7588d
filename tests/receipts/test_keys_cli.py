"""``loopgate keys rotate`` and ``loopgate keys list``, on the configured store."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from server_key import TEST_SECRETS

from loopgate.events import SigningKeyAdded
from loopgate.receipts.keys import STREAM
from loopgate.store import open_store


def stored_kids(url: str) -> list[str]:
    async def read() -> list[str]:
        store = await open_store(url)
        try:
            history = await store.read_stream(STREAM)
        finally:
            await store.close()
        return [r.event.kid for r in history if isinstance(r.event, SigningKeyAdded)]

    return asyncio.run(read())


def loopgate(*args: str) -> str:
    """Run ``loopgate ARGS`` with the tests' server key; its standard output."""
    env = {**os.environ, "LOOPGATE_SECRETS__KEY": TEST_SECRETS.key}
    done = subprocess.run(
        [sys.executable, "-m", "loopgate", *args], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rotate_adds_a_key_and_prints_its_kid_and_list_prints_them_all(store_url: str) -> None:
    before = stored_kids(store_url)  # Postgres keeps its database between tests
    if not before:
        assert "no signing keys yet" in loopgate("keys", "list", "--db", store_url)

    first = loopgate("keys", "rotate", "--db", store_url).strip()
    second = loopgate("keys", "rotate", "--db", store_url).strip()
    assert stored_kids(store_url) == [*before, first, second]

    lines = loopgate("keys", "list", "--db", store_url).strip().splitlines()
    assert [line.split()[0] for line in lines] == [*before, first, second]
    assert all(len(line.split()) == 2 for line in lines)  # kid and added_at
