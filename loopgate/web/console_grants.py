"""The console's standing grants: the workspace's grants, active and past, and revoking one.

A grant is made on a request's page ("Approve and allow for 30 min",
``web/console.py``); here every member who reads requests sees what is
approved without asking, and whoever may answer requests revokes a grant
(:meth:`loopgate.grants.Grants.revoke`): from then on its actions wait for a human.
"""

from __future__ import annotations

from aiohttp import web

from loopgate.domain.teams import allows
from loopgate.web.auth import actor_of
from loopgate.web.console_pages import actor_names, render, see_other
from loopgate.web.keys import GRANTS, TEAMS

routes = web.RouteTableDef()

NOTICES = {
    "revoked": "The grant is revoked: its session's matching requests wait for a human again."
}


@routes.get("/console/grants")
async def grants(request: web.Request) -> web.Response:
    actor = actor_of(request)
    listed = await request.app[GRANTS].list(actor)
    usernames = {m.user_id: m.username for m in await request.app[TEAMS].members(actor.tenant)}
    names = usernames | await actor_names(request)
    context = {
        "grants": listed,
        "names": names,
        "may_revoke": actor.answers_as is not None and allows(actor.role, "request.answer"),
        "notice": NOTICES.get(request.query.get("notice", "")),
        "error": None,
        "nav": "grants",
    }
    return render(request, "grants.html", context)


@routes.post("/console/grants/{grant_id}/revoke")
async def revoke(request: web.Request) -> web.Response:
    await request.app[GRANTS].revoke(request.match_info["grant_id"], actor_of(request))
    return see_other("/console/grants?notice=revoked")
