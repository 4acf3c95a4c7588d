"""Who a channel account answers as: its linked member, or an outsider holding its own id.

Every channel turns a human's press, click or confirmed link into
``Requests.answer(..., channel=, actor=)`` with the actor made here, so the
rules (routing, roles, four-eyes, one vote per member) are the same wherever
the answer comes from.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from loopgate.commands.base import Actor
from loopgate.teams import Teams


async def channel_actor(
    teams: Teams,
    channel: str,
    external_id: str,
    workspace_id: str,
    *,
    routed_by: Iterable[str] = (),
) -> Actor:
    """The actor a ``channel`` account (``external_id``) answers as in ``workspace_id``.

    A linked account acts as its member there: their role and principals,
    their answers recorded under their user id, while the events' ``Meta``
    names the account (``<channel>:<id>``). ``routed_by`` adds the selectors
    the message they answered from was delivered for (a Slack channel's
    ``slack:#ops``) to a linked member's principals: being there routes it to
    them. Any other account holds ``<channel>:<id>`` alone: it may answer what
    names that id (a session's Telegram operator) and nothing else, so
    ``Requests.answer`` records its attempt as ``AnswerRefused``.
    """
    responder = f"{channel}:{external_id}"
    member = await teams.identity(channel, external_id)
    if member is not None and member.workspace_id == workspace_id:
        actor = member.actor(id=responder)
        extra = frozenset(routed_by)
        return msgspec.structs.replace(actor, principals=actor.principals | extra)
    return Actor(
        id=responder,
        tenant=workspace_id,
        answers_as=responder,
        principals=frozenset({responder}),
    )
