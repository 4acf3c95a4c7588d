"""Where /metrics is served, from the settings: off, the main port, its own listener, hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopgate.config import ConfigError, load_config, metrics_bind, metrics_exposure


@pytest.fixture(autouse=True)
def _no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./loopgate.toml of the checkout's to read


def exposure(**env: str) -> str:
    return metrics_exposure(load_config(env={f"LOOPGATE_{k.upper()}": v for k, v in env.items()}))


@pytest.mark.parametrize(
    ("env", "where"),
    [
        ({}, "main"),  # 127.0.0.1 by default
        ({"server__host": "::1"}, "main"),
        ({"server__host": "0.0.0.0"}, "hidden"),
        ({"server__host": "0.0.0.0", "metrics__token": "t0ken"}, "main"),
        ({"server__host": "0.0.0.0", "metrics__bind": "127.0.0.1:9464"}, "bind"),
        ({"metrics__bind": "127.0.0.1:9464"}, "bind"),
        ({"metrics__enabled": "false", "metrics__token": "t0ken"}, "off"),
    ],
)
def test_metrics_are_never_public_by_default(env: dict[str, str], where: str) -> None:
    assert exposure(**env) == where


@pytest.mark.parametrize(
    ("bind", "address"),
    [
        ("127.0.0.1:9464", ("127.0.0.1", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        (":9464", ("0.0.0.0", 9464)),
    ],
)
def test_a_bind_is_host_and_port(bind: str, address: tuple[str, int]) -> None:
    assert metrics_bind(bind) == address


@pytest.mark.parametrize("bind", ["9464", "localhost", "127.0.0.1:http", "127.0.0.1:70000"])
def test_a_bad_bind_stops_the_start_naming_the_key_and_source(bind: str) -> None:
    with pytest.raises(ConfigError, match=r"^metrics\.bind: expected host:port") as info:
        load_config(env={"LOOPGATE_METRICS__BIND": bind})
    assert "LOOPGATE_METRICS__BIND" in str(info.value)
