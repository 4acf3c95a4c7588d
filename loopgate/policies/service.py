"""The ``Policies`` service: read a workspace's rules, and replace them as a whole.

A policy is set on ``policy-<workspace>`` at the version read: the stream's
length is the policy's version, so two concurrent writers cannot both make
version n+1; the second gets 409 ``policy_version_conflict`` and reads again,
as does a caller whose ``expected_version`` is no longer the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import msgspec

from loopgate.commands.base import Actor, require, utcnow
from loopgate.domain.policy import CurrentPolicy, validate_rules
from loopgate.errors import ConcurrencyError, Conflict, Forbidden, ValidationFailed
from loopgate.events import PolicySet, Rule
from loopgate.store.base import EventStore

CLI_ACTOR = "cli"
"""Who ``loopgate policy apply`` is recorded as (``set_by``): whoever runs the server."""


class PolicyView(msgspec.Struct, frozen=True, kw_only=True):
    """A workspace's policy as ``GET /v1/policy`` shows it; version 0 and no rules if never set."""

    version: int
    rules: list[Rule]
    set_by: str | None = None
    set_at: datetime | None = None


class PolicyFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A TOML policy file: ``[[rules]]`` tables, in the order they are tried."""

    rules: tuple[Rule, ...] = ()


def load_policy_file(path: Path) -> tuple[Rule, ...]:
    """The rules of a TOML file, validated; ``ValidationFailed`` says what is wrong where."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed(f"{path}: {exc.strerror}") from None
    try:
        rules = msgspec.toml.decode(raw, type=PolicyFile).rules
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ValidationFailed(f"{path}: {exc}", code="invalid_policy") from None
    validate_rules(rules)
    return rules


def cli_actor(workspace_id: str) -> Actor:
    """The actor of the command line: whoever holds the store is the workspace's owner."""
    return Actor(id=CLI_ACTOR, tenant=workspace_id, answers_as=CLI_ACTOR, role="owner")


def check_may_set(actor: Actor) -> None:
    """403 ``role_forbids`` unless a person whose role has ``settings.manage`` acts.

    An agent API key is refused whatever its member's role, as it is for
    managing members: it acts for a program, and what requests need is a
    person's decision.
    """
    if actor.answers_as is None:
        raise Forbidden(
            "an agent API key may read the policy but never change it", code="role_forbids"
        )
    require(actor, "settings.manage")


def _stream(workspace_id: str) -> str:
    return f"policy-{workspace_id}"


class Policies:
    def __init__(self, store: EventStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store, self.clock = store, clock

    async def current(self, workspace_id: str) -> CurrentPolicy | None:
        """The workspace's rules as last set; None if it never had any (a ``PolicySource``)."""
        view = await self.view(workspace_id)
        if view.version == 0:
            return None
        return CurrentPolicy(version=view.version, rules=tuple(view.rules))

    async def view(self, workspace_id: str) -> PolicyView:
        rows = await self.store.fetch(
            "SELECT version, rules, set_by, set_at FROM policies WHERE workspace_id = ?",
            (workspace_id,),
        )
        if not rows:
            return PolicyView(version=0, rules=[])
        row = rows[0]
        return PolicyView(
            version=row["version"],
            rules=msgspec.json.decode(row["rules"], type=list[Rule]),
            set_by=row["set_by"],
            # SQLite hands back timestamps as ISO text, Postgres as datetimes.
            set_at=msgspec.convert(row["set_at"], datetime, strict=False),
        )

    async def set_policy(
        self, actor: Actor, rules: Sequence[Rule], expected_version: int | None = None
    ) -> PolicyView:
        """Replace the workspace's rules as a whole (:func:`check_may_set`); the new policy."""
        check_may_set(actor)
        validate_rules(rules)
        stream = _stream(actor.tenant)
        history = await self.store.read_stream(stream)
        version = len(history)
        if expected_version is not None and expected_version != version:
            raise _conflict(version, expected_version)
        event = PolicySet(
            workspace_id=actor.tenant, version=version + 1, rules=tuple(rules), set_at=self.clock()
        )
        try:
            await self.store.append(stream, version, [event], actor.meta())
        except ConcurrencyError:
            raise _conflict(None, version) from None
        return await self.view(actor.tenant)


def _conflict(current: int | None, expected: int) -> Conflict:
    where = (
        f"is at version {current}, not {expected}"
        if current is not None
        else f"changed from version {expected} while this one was being set"
    )
    return Conflict(
        f"the policy {where}: read it again (GET /v1/policy) and set it on that",
        code="policy_version_conflict",
    )
