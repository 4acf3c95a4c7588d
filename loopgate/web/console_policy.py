"""The console's policy page: the workspace's rules, read-only.

Every member who may read requests sees what the policy will do to them;
changing it is ``PUT /v1/policy`` or ``loopgate policy apply`` (README, "Policies").
"""

from __future__ import annotations

from aiohttp import web

from loopgate.commands.base import require
from loopgate.domain.policy import describe_condition, describe_then
from loopgate.web.auth import actor_of
from loopgate.web.console_pages import render
from loopgate.web.keys import POLICIES, TEAMS

routes = web.RouteTableDef()


@routes.get("/console/policy")
async def policy(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require(actor, "request.read")
    view = await request.app[POLICIES].view(actor.tenant)
    names = {m.user_id: m.username for m in await request.app[TEAMS].members(actor.tenant)}
    rules = [
        {
            "name": rule.name,
            "when": [describe_condition(c) for c in rule.when],
            "then": describe_then(rule.then),
        }
        for rule in view.rules
    ]
    context = {
        "policy": view,
        "set_by": names.get(view.set_by or "", view.set_by),
        "rules": rules,
        "nav": "policy",
    }
    return render(request, "policy.html", context)
