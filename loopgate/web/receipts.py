"""Receipts: the public keys (``/.well-known/jwks.json``) and redemption (``/v1/receipts/redeem``).

The JWKS is public, as a JWKS is: a tool, or ``loopgate receipt verify``,
checks a receipt against it offline. Redeeming is for any credential of the
receipt's workspace, agent keys included (the tool that runs the action is
the one that redeems), and the open loopback mode's anonymous caller. What a
receipt is and why each refusal: ``loopgate/receipts/service.py``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from loopgate.events import Action
from loopgate.receipts import Redemption
from loopgate.web.auth import actor_of
from loopgate.web.describe import describe
from loopgate.web.keys import RECEIPTS
from loopgate.web.params import read_body
from loopgate.web.responses import json_response
from loopgate.wire import Body

routes = web.RouteTableDef()


class RedeemBody(Body, frozen=True, kw_only=True):
    """``POST /v1/receipts/redeem``: the receipt, and the action the tool is about to run."""

    receipt: str
    action: Action


class Jwk(msgspec.Struct, frozen=True, kw_only=True):
    """An Ed25519 public key (RFC 8037): ``x`` is the base64url of its 32 bytes."""

    kty: str
    crv: str
    x: str
    kid: str
    alg: str
    use: str


class Jwks(msgspec.Struct, frozen=True, kw_only=True):
    """The receipts' public keys, newest first; old keys stay, so old receipts verify."""

    keys: list[Jwk]


@routes.get("/.well-known/jwks.json")
@describe("The public keys that receipts are signed with (a JWKS)", replies={200: Jwks})
async def jwks(request: web.Request) -> web.Response:
    found: dict[str, Any] = await request.app[RECEIPTS].jwks()
    return json_response(msgspec.convert(found, Jwks))


@routes.post("/v1/receipts/redeem")
@describe(
    "Use a receipt up, for the action it approves: 200 once, 409 after",
    body=RedeemBody,
    replies={200: Redemption},
    errors=(404, 409, 410, 422),
)
async def redeem(request: web.Request) -> web.Response:
    body = await read_body(request, RedeemBody)
    redemption = await request.app[RECEIPTS].redeem(body.receipt, body.action, actor_of(request))
    return json_response(redemption)
