"""The server key that seals webhook secrets: where it comes from, and what it refuses."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from loopgate.channels.webhooks.secrets import SealError, SecretBox
from loopgate.config import Config, ConfigError, DatabaseConfig, SecretsConfig, secrets_key_file


def sqlite_config(path: Path, **secrets: str) -> Config:
    return Config(
        database=DatabaseConfig(url=f"sqlite:///{path}"), secrets=SecretsConfig(**secrets)
    )


def test_the_key_file_is_made_beside_the_database_with_mode_0600_and_then_reused(
    tmp_path: Path,
) -> None:
    config = sqlite_config(tmp_path / "loopgate.db")
    sealed = SecretBox.from_config(config).seal("t", "whsec_x")
    key_file = tmp_path / "loopgate-secrets.key"
    assert secrets_key_file(config) == key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert "whsec_x" not in sealed
    assert SecretBox.from_config(config).open("t", sealed) == "whsec_x"


def test_a_sealed_secret_opens_neither_with_another_key_nor_for_another_tenant(
    tmp_path: Path,
) -> None:
    box = SecretBox(lambda: bytes(32))
    sealed = box.seal("t", "whsec_x")
    with pytest.raises(SealError):
        box.open("u", sealed)
    with pytest.raises(SealError):
        SecretBox(lambda: bytes(range(32))).open("t", sealed)


def test_secrets_key_in_config_wins_and_must_be_32_bytes(tmp_path: Path) -> None:
    key = base64.b64encode(bytes(range(32))).decode()
    box = SecretBox.from_config(sqlite_config(tmp_path / "a.db", key=key))
    assert SecretBox(lambda: bytes(range(32))).open("t", box.seal("t", "s")) == "s"
    assert not (tmp_path / "loopgate-secrets.key").exists()
    with pytest.raises(ConfigError, match=r"secrets\.key"):
        SecretBox.from_config(sqlite_config(tmp_path / "a.db", key="c2hvcnQ="))
