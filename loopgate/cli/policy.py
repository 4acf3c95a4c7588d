"""``loopgate policy apply|show|test``: a workspace's approval rules from a TOML file.

``apply`` writes straight to the configured store, as the workspace's owner
would over ``PUT /v1/policy`` (whoever runs the server holds its store);
``show`` prints the rules in force; ``test`` reads no store at all: it says
which rule of a file matches a request, and what it would do, in the words
the server uses (:func:`loopgate.domain.policy.explain`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from loopgate.cli.common import UsageError
from loopgate.config import Config
from loopgate.domain.policy import (
    CurrentPolicy,
    RequestFacts,
    Requirements,
    describe_condition,
    describe_then,
    describe_verdict,
    explain,
)
from loopgate.domain.teams import DEFAULT_WORKSPACE, default_approvers
from loopgate.events import EscalationStep, OnTimeout, RequestType
from loopgate.policies import Policies, PolicyView, cli_actor, load_policy_file
from loopgate.store.base import EventStore

DEFAULT_TIMEOUT_SECONDS = 300


class TestRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``--request``: what a rule sees of a request, and what its agent asks.

    Other fields of a request body (``message``, ``options``...) are ignored,
    so a real ``POST /v1/requests`` body can be pasted as it is.
    """

    session_id: str
    client_id: str
    request_type: RequestType = "confirmation"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)
    approvers: tuple[str, ...] | None = None
    quorum: int = 1
    veto: bool = True
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    on_timeout: OnTimeout = "reject"
    escalation: tuple[EscalationStep, ...] = ()
    remind_every_seconds: int | None = None
    warn_before_expiry_seconds: int | None = None


def policy_test(path: Path, request_json: str, version: int) -> str:
    """What the file's rules do to the request, as two lines (see ``describe_verdict``)."""
    rules = load_policy_file(path)
    try:
        asked = msgspec.json.decode(request_json.encode(), type=TestRequest)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise UsageError(f"--request: {exc}") from None
    facts = RequestFacts(
        session_id=asked.session_id,
        client_id=asked.client_id,
        request_type=asked.request_type,
        metadata=asked.metadata,
    )
    requirements = Requirements(
        approvers=asked.approvers if asked.approvers is not None else default_approvers(None),
        quorum=asked.quorum,
        veto=asked.veto,
        timeout_seconds=asked.timeout_seconds,
        on_timeout=asked.on_timeout,
        escalation=asked.escalation,
        remind_every_seconds=asked.remind_every_seconds,
        warn_before_expiry_seconds=asked.warn_before_expiry_seconds,
    )
    policy = CurrentPolicy(version=version, rules=rules)
    return describe_verdict(explain(policy, facts, requirements))


async def policy_apply(config: Config, path: Path, workspace_id: str) -> str:
    """Set the file's rules as the workspace's policy; what was set, in one line."""
    rules = load_policy_file(path)  # a bad file is refused before the store is opened
    from loopgate.store import open_store

    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        await _check_workspace(store, workspace_id)
        view = await Policies(store).set_policy(cli_actor(workspace_id), rules)
    finally:
        await store.close()
    return f"policy v{view.version} set for workspace {workspace_id}: {len(view.rules)} rule(s)"


async def policy_show(config: Config, workspace_id: str) -> str:
    from loopgate.store import open_store

    store = await open_store(config.database.url, migrate=config.database.migrate_on_start)
    try:
        await _check_workspace(store, workspace_id)
        view = await Policies(store).view(workspace_id)
    finally:
        await store.close()
    return show(view, workspace_id)


def show(view: PolicyView, workspace_id: str) -> str:
    """The policy for people: its version, then each rule in the order they are tried."""
    if view.version == 0:
        return f"workspace {workspace_id}: no policy set"
    set_at = view.set_at.isoformat() if view.set_at else "?"
    lines = [f"workspace {workspace_id}: policy v{view.version}, set by {view.set_by} at {set_at}"]
    for index, rule in enumerate(view.rules, 1):
        when = " and ".join(describe_condition(c) for c in rule.when) or "every request"
        lines.append(f"{index}. {rule.name}: when {when} -> {describe_then(rule.then)}")
    if not view.rules:
        lines.append("(no rules: every request needs what its agent asks)")
    return "\n".join(lines)


async def _check_workspace(store: EventStore, workspace_id: str) -> None:
    # The default workspace exists before anyone registers (the open mode acts in it).
    if workspace_id == DEFAULT_WORKSPACE:
        return
    rows = await store.fetch(
        "SELECT workspace_id FROM workspaces WHERE workspace_id = ?", (workspace_id,)
    )
    if not rows:
        raise UsageError(f"no workspace {workspace_id!r} in this store")
