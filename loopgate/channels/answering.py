"""Who a channel account answers as, and what it is told when its answer is not taken.

Every channel turns a human's press, click or confirmed link into
``Requests.answer(..., channel=, actor=)`` with the actor made here, so the
rules (routing, roles, four-eyes, one vote per member) are the same wherever
the answer comes from; and every channel explains a refusal alike
(:class:`Refusals`), each in its own words for the three a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from loopgate.commands.base import Actor
from loopgate.errors import Forbidden, LoopgateError, NotFound
from loopgate.teams import Teams
from loopgate.views import RequestView


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


ALREADY_VOTED = "You already voted on this request; the others' votes decide it now."
_ENDED = {
    "cancelled": "This request was cancelled by the agent.",
    "expired": "This request has expired.",
}


@dataclass(frozen=True)
class Refusals:
    """What a channel tells someone whose answer was not taken, in that channel's own words."""

    not_an_approver: str
    role_cannot_answer: str
    requester_cannot_approve: str

    def explain(self, error: LoopgateError, view: RequestView | None) -> str | None:
        """Why ``error`` refused the answer; None for a refusal the channel words itself."""
        if isinstance(error, Forbidden):
            return {
                "role_cannot_answer": self.role_cannot_answer,
                "requester_cannot_approve": self.requester_cannot_approve,
            }.get(error.code, self.not_an_approver)
        if isinstance(error, NotFound):
            return "This request no longer exists."
        if error.code == "already_voted":
            return ALREADY_VOTED
        if view is not None and view.final:
            if view.status == "answered":
                return f"This request was already answered: {view.response}."
            return _ENDED[view.status]
        return None


def link_refusals(account: str) -> dict[str, str]:
    """What linking with a code says when it links nothing, by the error's code.

    ``account`` names the channel's account in the sentence ("Telegram", "Slack").
    """
    return {
        "link_code_expired": "This link code has expired. Ask for a new one in the console.",
        "link_code_used": "This link code was already used. Ask for a new one in the console.",
        "link_code_not_found": "This link code is unknown. Ask for a new one in the console.",
        "identity_taken": (
            f"Not linked: this {account} account is already linked to another member. "
            "They can unlink it in the console first."
        ),
        "member_not_found": "Not linked: the member who asked for this code is no longer a member.",
    }
