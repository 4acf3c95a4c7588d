"""``loopgate keys rotate`` and ``loopgate keys list``, on the configured store."""

from __future__ import annotations

import asyncio

import pytest
from server_key import TEST_SECRETS

from loopgate.cli import main
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


def test_rotate_adds_a_key_and_prints_its_kid_and_list_prints_them_all(
    store_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPGATE_SECRETS__KEY", TEST_SECRETS.key)
    before = stored_kids(store_url)  # Postgres keeps its database between tests
    if not before:
        assert main(["keys", "list", "--db", store_url]) == 0
        assert "no signing keys yet" in capsys.readouterr().out

    assert main(["keys", "rotate", "--db", store_url]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["keys", "rotate", "--db", store_url]) == 0
    second = capsys.readouterr().out.strip()
    assert stored_kids(store_url) == [*before, first, second]

    assert main(["keys", "list", "--db", store_url]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == [*before, first, second]
    assert all(len(line.split()) == 2 for line in lines)  # kid and added_at
