"""Standing grants over HTTP: list them, read one, revoke one (`/v1/grants`).

Whoever reads requests reads the grants, keys included (an agent may want to
know what will be approved without asking). Revoking takes a person who may
answer requests (:meth:`loopgate.grants.Grants.revoke`).
"""

from __future__ import annotations

import msgspec
from aiohttp import web

from loopgate.grants import GrantView
from loopgate.web.auth import actor_of
from loopgate.web.describe import Param, describe
from loopgate.web.keys import GRANTS
from loopgate.web.responses import json_response

routes = web.RouteTableDef()


class GrantList(msgspec.Struct, frozen=True, kw_only=True):
    grants: list[GrantView]


@routes.get("/v1/grants")
@describe(
    "The workspace's standing grants, newest first (`?active=true`: only the live ones)",
    params=(Param("active", "only grants neither expired nor revoked", {"type": "boolean"}),),
    replies={200: GrantList},
)
async def list_grants(request: web.Request) -> web.Response:
    active_only = request.query.get("active", "false").lower() in ("1", "true", "yes")
    grants = await request.app[GRANTS].list(actor_of(request), active_only=active_only)
    return json_response(GrantList(grants=grants))


@routes.get("/v1/grants/{grant_id}")
@describe("One standing grant", replies={200: GrantView}, errors=(404,))
async def get_grant(request: web.Request) -> web.Response:
    grant = await request.app[GRANTS].get(request.match_info["grant_id"], actor_of(request))
    return json_response(grant)


@routes.delete("/v1/grants/{grant_id}")
@describe(
    "Revoke a standing grant: from now on, in every process, its actions wait for a human",
    replies={200: GrantView},
    errors=(403, 404),
)
async def revoke_grant(request: web.Request) -> web.Response:
    grant = await request.app[GRANTS].revoke(request.match_info["grant_id"], actor_of(request))
    return json_response(grant)
