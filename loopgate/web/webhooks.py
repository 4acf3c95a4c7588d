"""``GET``/``POST /v1/webhook-secret``: read or rotate the tenant's webhook signing secret.

Receivers check ``Loopgate-Signature`` with this secret (``loopgate.client.
verify_webhook``). Reading it the first time makes one; rotating replaces it
at once, so a receiver should accept both for the few seconds its own
configuration takes to catch up.
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from loopgate.channels.webhooks.secrets import WebhookSecrets
from loopgate.channels.webhooks.signing import SIGNATURE_HEADER
from loopgate.commands.base import require
from loopgate.web.auth import actor_of
from loopgate.web.describe import describe
from loopgate.web.keys import REQUESTS, SECRET_BOX
from loopgate.web.responses import json_response

routes = web.RouteTableDef()


def _secrets(request: web.Request) -> WebhookSecrets:
    requests = request.app[REQUESTS]
    return WebhookSecrets(requests.store, requests.clock, request.app[SECRET_BOX])


class WebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    """The secret that signs the tenant's webhooks, the header it signs and how."""

    secret: str
    header: str
    algorithm: str


def _shape(secret: str) -> WebhookSecret:
    return WebhookSecret(secret=secret, header=SIGNATURE_HEADER, algorithm="hmac-sha256")


@routes.get("/v1/webhook-secret")
@describe(
    "The tenant's webhook signing secret (made on first read)",
    replies={200: WebhookSecret},
    errors=(403,),
)
async def read_secret(request: web.Request) -> web.Response:
    # The secret is for whoever asks (their webhooks carry its signature): an
    # auditor, who never asks, neither reads nor rotates it.
    actor = actor_of(request)
    require(actor, "request.create")
    return json_response(_shape(await _secrets(request).current(actor.tenant)))


@routes.post("/v1/webhook-secret")
@describe("Rotate the webhook signing secret", replies={200: WebhookSecret}, errors=(403,))
async def rotate_secret(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require(actor, "request.create")
    return json_response(_shape(await _secrets(request).rotate(actor.tenant, actor.meta())))
