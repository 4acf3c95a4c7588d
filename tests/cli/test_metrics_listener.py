"""``loopgate serve`` with ``metrics.bind``: a listener of its own, and the main port without."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path

from cli_server import free_port, get, running_server, stop

TOKEN = "scrape-token-0123456789"


def scrape(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_metrics_are_served_on_their_own_listener_only(tmp_path: Path) -> None:
    port = free_port()
    env = {"LOOPGATE_METRICS__BIND": f"127.0.0.1:{port}", "LOOPGATE_METRICS__TOKEN": TOKEN}
    with running_server(cwd=tmp_path, env=env) as (base, process):
        assert get(f"{base}/health")[0] == 200
        listener = f"http://127.0.0.1:{port}"

        assert get(f"{base}/metrics")[0] == 404
        assert scrape(f"{listener}/metrics")[0] == 401
        assert scrape(f"{listener}/health")[0] == 404
        status, text = scrape(f"{listener}/metrics", TOKEN)
        assert status == 200
        assert 'loopgate_http_requests_total{method="GET",route="/health",status="200"}' in text
        output = stop(process)
    assert f"{listener}/metrics" in output
    assert TOKEN not in output


def test_bound_beyond_loopback_the_log_says_how_to_turn_metrics_on(tmp_path: Path) -> None:
    env = {"LOOPGATE_AUTH__JWT_SECRET": "a-test-secret-that-is-long-enough-0123456789"}
    with running_server("--host", "0.0.0.0", cwd=tmp_path, env=env) as (base, process):
        assert get(f"{base}/metrics")[0] == 404
        output = stop(process)
    assert "metrics off the public port" in output
    assert "metrics.bind" in output
