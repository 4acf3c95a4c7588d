"""Ask a human before deploying, the way a CI job would. Standard library only.

    loopgate serve &                      # in another terminal
    python examples/deploy_gate.py        # waits for an answer ($LOOPGATE_URL, if set)
    # answer it at /console, on Telegram, or over the API:
    curl -X POST localhost:8080/v1/requests/<id>/response \
        -H 'Content-Type: application/json' -d '{"option": "🚀 Deploy"}'

Exits 0 if the human approved, 1 otherwise, so a pipeline can gate on it.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

BASE = os.environ.get("LOOPGATE_URL", "http://127.0.0.1:8080").rstrip("/")


def call(method: str, path: str, body: dict[str, object] | None = None) -> dict[str, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        BASE + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=70) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def main() -> int:
    call(
        "POST",
        "/hitl/register",
        {"session_id": "deploy-bot", "client_id": "ci", "telegram_id": 123456789},
    )
    created = call(
        "POST",
        "/hitl/request",
        {
            "session_id": "deploy-bot",
            "client_id": "ci",
            "message": "Deploy v2.1.0 to production? All tests passed ✅",
            "options": ["🚀 Deploy", "⏸️ Hold", "🔍 Review First"],
            "metadata": {"version": "v2.1.0", "tests_passed": 847},
            "timeout_seconds": 600,
        },
    )
    request_id = created["request_id"]
    print(f"waiting for a human on request {request_id} …", file=sys.stderr)
    while True:
        # A long-poll: the server answers the moment the human decides.
        status = call("GET", f"/hitl/poll?request_id={request_id}&wait=60")
        if status["completed"]:
            break
    print(f"{status['status']}: {status['response'] or '(no answer)'}", file=sys.stderr)
    return 0 if status["approved"] else 1


if __name__ == "__main__":
    sys.exit(main())
