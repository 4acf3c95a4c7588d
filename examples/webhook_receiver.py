"""Receive Loopgate's webhooks: check the signature, drop repeats, act on the decision.

Give a request ``"callback_url": "http://this-host:9000/loopgate"``; once it is
decided, Loopgate POSTs the decision here, signed with your tenant's secret::

    LOOPGATE_URL=http://127.0.0.1:8080 python examples/webhook_receiver.py --port 9000

(A receiver on a private address, like this one on your machine, needs
``webhooks.allow_private_networks = true`` on the server.) Answer 2xx quickly:
anything else, or no answer within ``webhooks.timeout_seconds``, is retried
with the same ``Loopgate-Delivery-Id``.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
from collections.abc import Callable
from typing import Any

from aiohttp import web

from loopgate.client import InvalidSignature, verify_webhook

DELIVERY_HEADER = "Loopgate-Delivery-Id"
OnDecision = Callable[[dict[str, Any]], None]


def make_app(secret: str, on_decision: OnDecision) -> web.Application:
    """The receiver: ``on_decision`` is called once per delivery id with the verified JSON."""
    seen: set[str] = set()  # keep these in your database in real life

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()  # the raw bytes: the signature covers them exactly
        try:
            decision = verify_webhook(body, request.headers, secret)
        except InvalidSignature as exc:
            return web.json_response({"error": str(exc)}, status=401)
        delivery = request.headers.get(DELIVERY_HEADER, "")
        if delivery not in seen:
            seen.add(delivery)
            on_decision(decision)
        return web.json_response({"received": delivery})

    app = web.Application()
    app.router.add_post("/loopgate", receive)
    return app


def fetch_secret(server: str, api_key: str | None) -> str:
    """The tenant's signing secret, from ``GET /v1/webhook-secret``."""
    headers = {"X-API-Key": api_key} if api_key else {}
    request = urllib.request.Request(f"{server.rstrip('/')}/v1/webhook-secret", headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        secret: str = json.loads(response.read())["secret"]
    return secret


def show(decision: dict[str, Any]) -> None:
    print(f"{decision['request_id']}: {decision['status']} -> {decision['response']!r}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--server", default=os.environ.get("LOOPGATE_URL", "http://127.0.0.1:8080"))
    args = parser.parse_args()
    secret = fetch_secret(args.server, os.environ.get("LOOPGATE_API_KEY"))
    web.run_app(make_app(secret, show), port=args.port)
