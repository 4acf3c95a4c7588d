"""Who may vote on a request, and what the workspace's policy makes of it.

The parts of creating and answering a request that look beyond its stream:
the policy in force (a :class:`PolicySource`, ``loopgate.policies``), the
members its approvers name (a :class:`Roster`, ``loopgate.teams``) and four
eyes. ``commands/`` sits below both packages, so it names what it needs as
protocols and the app wires them in (``web/app.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from loopgate.commands.base import Actor
from loopgate.domain import request as request_domain
from loopgate.domain.policy import CurrentPolicy, RequestFacts, Requirements, explain
from loopgate.errors import DomainError, Forbidden
from loopgate.events import Action, RequestCreated
from loopgate.store.base import EventStore
from loopgate.views import RequestView

_POLICY_SHAPED = (
    *msgspec.structs.asdict(Requirements(approvers=(), timeout_seconds=0)),
    "policy_version",
    "rule",
)
"""The fields of ``RequestCreated`` a policy rule may have set."""


class PolicySource(Protocol):
    """Where a workspace's rules are kept (``loopgate.policies``)."""

    async def current(self, workspace_id: str) -> CurrentPolicy | None:
        """The workspace's policy as last set; None if it never had one."""


class Roster(Protocol):
    """Who a request's approvers name (``loopgate.teams``)."""

    async def voters(self, workspace_id: str, approvers: Sequence[str]) -> frozenset[str]:
        """Everyone the selectors name who may answer, as their votes are recorded
        (a member's user id; ``telegram:<id>`` for a bare id nobody linked)."""


class Approvals:
    """The policy and the roster a :class:`~loopgate.commands.requests.Requests` consults."""

    def __init__(self, policies: PolicySource | None, roster: Roster | None) -> None:
        self.policies, self.roster = policies, roster

    async def under_policy(
        self, command: request_domain.CreateRequest, tenant: str
    ) -> request_domain.CreateRequest:
        """``command`` as the workspace's first matching rule has it: decided, or stricter."""
        policy = await self.policies.current(tenant) if self.policies is not None else None
        if policy is None:
            return command
        facts = RequestFacts(
            session_id=command.session_id,
            client_id=command.client_id,
            request_type=command.request_type,
            metadata=command.metadata,
            tool=None if command.action is None else command.action.tool,
        )
        asked = Requirements(
            approvers=command.approvers,
            quorum=command.quorum,
            veto=command.veto,
            timeout_seconds=command.timeout_seconds,
            on_timeout=command.on_timeout,
            escalation=command.escalation,
            remind_every_seconds=command.remind_every_seconds,
            warn_before_expiry_seconds=command.warn_before_expiry_seconds,
            grantable=command.grantable,
        )
        verdict = explain(policy, facts, asked)
        return msgspec.structs.replace(
            command,
            policy_version=verdict.policy_version,
            rule=verdict.rule,
            decision=verdict.decision,
            reason=verdict.reason,
            **(
                msgspec.structs.asdict(verdict.requirements)
                # Only an action can be granted: a rule's grantable passes over the rest.
                | {"grantable": verdict.requirements.grantable and command.action is not None}
            ),
        )

    async def voters(self, tenant: str, approvers: Sequence[str], requester: str | None) -> int:
        """How many may vote: everyone the approvers name, but the requester."""
        if self.roster is None:
            return 0
        voters = await self.roster.voters(tenant, approvers)
        return len(voters - {requester})

    async def check_quorum_reachable(
        self, command: request_domain.CreateRequest, tenant: str
    ) -> None:
        """``DomainError`` (422 ``quorum_unreachable``) if too few may vote for the quorum."""
        voters = await self.voters(tenant, command.approvers, command.requester)
        if command.quorum > voters:
            raise DomainError(
                f"quorum {command.quorum} needs more approvers than the {voters} who may vote"
                f" ({', '.join(command.approvers)}"
                + (", not counting you, the requester)" if command.requester else ")"),
                code="quorum_unreachable",
            )


async def standing_grant(
    store: EventStore, tenant: str, session_id: str, action: Action, fingerprint: str, now: datetime
) -> str | None:
    """The id of a live grant of the session that covers ``action``, if there is one.

    Read from the ``grants`` table, which a revocation updates in its own append,
    so a revoked grant stops applying at once in every process.
    """
    rows = await store.fetch(
        "SELECT grant_id FROM grants WHERE tenant = ? AND session_id = ? AND tool = ?"
        " AND revoked_at IS NULL AND expires_at > ?"
        " AND (scope = 'tool' OR fingerprint = ?) ORDER BY issued_at LIMIT 1",
        (tenant, session_id, action.tool, now, fingerprint),
    )
    return str(rows[0]["grant_id"]) if rows else None


def not_theirs(
    view: RequestView, actor: Actor, approvers: Sequence[str], routed_by: str | None
) -> Forbidden | None:
    """Why ``actor`` may not vote on the open request ``view``, or None if they may."""
    if view.requester is not None and actor.user_id == view.requester:
        # Four eyes: whoever asked (their key, the console) never approves it.
        return Forbidden(
            "you asked for this request (with your key or the console):"
            " someone else must decide it",
            code="requester_cannot_approve",
        )
    if routed_by is None:
        return Forbidden(
            "this request is not routed to you: it names " + ", ".join(approvers),
            code="not_an_approver",
        )
    return None


def as_asked_then(repeat: RequestCreated, earlier: RequestCreated) -> RequestCreated:
    """An idempotent repeat as it compares with the request it repeats.

    When the policy changed in between, what the rules made of the agent's ask
    differs; the repeat is the same request if the agent asked the same.
    """
    if earlier.policy_version == repeat.policy_version:
        return repeat
    return msgspec.structs.replace(
        repeat, **{name: getattr(earlier, name) for name in _POLICY_SHAPED}
    )
