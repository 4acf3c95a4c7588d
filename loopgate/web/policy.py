"""The workspace's approval policy over HTTP: ``GET /v1/policy`` and ``PUT /v1/policy``.

Everyone who may read requests reads the policy, keys included: an agent may
want to know what a request will need. Setting it takes ``settings.manage``
(owners and admins) and a person: an agent API key never changes it, whatever
its member's role (:meth:`loopgate.policies.Policies.set_policy`).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from loopgate.commands.base import require
from loopgate.events import Rule
from loopgate.policies import PolicyView, check_may_set
from loopgate.web.auth import actor_of
from loopgate.web.describe import describe
from loopgate.web.keys import POLICIES
from loopgate.web.params import read_body
from loopgate.web.responses import json_response
from loopgate.wire import Body

routes = web.RouteTableDef()

MAX_RULES = 500


class PolicyBody(Body, frozen=True, kw_only=True):
    """``PUT /v1/policy``: the whole ordered list of rules (the first that matches applies).

    ``expected_version``: set only if the policy is still at this version
    (0: never set), else 409 ``policy_version_conflict``.
    """

    rules: Annotated[list[Rule], msgspec.Meta(max_length=MAX_RULES)]
    expected_version: Annotated[int, msgspec.Meta(ge=0)] | None = None


@routes.get("/v1/policy")
@describe(
    "The workspace's approval policy: its rules in order, and its version (0: never set)",
    replies={200: PolicyView},
)
async def get_policy(request: web.Request) -> web.Response:
    actor = actor_of(request)
    require(actor, "request.read")
    return json_response(await request.app[POLICIES].view(actor.tenant))


@routes.put("/v1/policy")
@describe(
    "Replace the approval policy as a whole (validated: 400 invalid_policy names the rule)",
    body=PolicyBody,
    replies={200: PolicyView},
    errors=(409,),
)
async def put_policy(request: web.Request) -> web.Response:
    actor = actor_of(request)
    check_may_set(actor)  # refused before the body is read
    body = await read_body(request, PolicyBody)
    policy = await request.app[POLICIES].set_policy(actor, body.rules, body.expected_version)
    return json_response(policy)
