"""The Policies service on both stores: set, read, versions, and concurrent writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from loopgate.commands.base import Actor
from loopgate.errors import Conflict, Forbidden, ValidationFailed
from loopgate.events import Condition, PolicySet, Rule, RuleThen
from loopgate.policies import Policies, cli_actor
from loopgate.projections import PROJECTIONS
from loopgate.store.base import EventStore

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
PAYMENTS = Rule(
    name="payments",
    when=(Condition(field="metadata.amount", op="gte", value=10000),),
    then=RuleThen(approvers=("group:finance",), quorum=2),
)
STAGING = Rule(
    name="staging",
    when=(Condition(field="session_id", op="glob", value="staging-*"),),
    then=RuleThen(decide="approve", reason="staging needs nobody"),
)


def person(role: str = "admin", workspace: str = "ws-1") -> Actor:
    return Actor(
        id="user-1",
        tenant=workspace,
        answers_as="user-1",
        user_id="user-1",
        role=role,  # type: ignore[arg-type]
    )


@pytest.fixture
def policies(store: EventStore) -> Policies:
    return Policies(store, clock=lambda: NOW)


async def test_a_workspace_without_a_policy_reads_as_version_zero(policies: Policies) -> None:
    assert await policies.current("ws-1") is None
    view = await policies.view("ws-1")
    assert (view.version, view.rules, view.set_by, view.set_at) == (0, [], None, None)


async def test_setting_records_a_new_version_and_the_projection_reads_it(
    policies: Policies, store: EventStore
) -> None:
    first = await policies.set_policy(person(), [PAYMENTS, STAGING])
    assert (first.version, first.rules, first.set_by, first.set_at) == (
        1,
        [PAYMENTS, STAGING],
        "user-1",
        NOW,
    )
    current = await policies.current("ws-1")
    assert current is not None and (current.version, current.rules) == (1, (PAYMENTS, STAGING))

    second = await policies.set_policy(person("owner"), [STAGING], expected_version=1)
    assert (second.version, second.rules) == (2, [STAGING])
    records = await store.read_stream("policy-ws-1")
    assert [(r.version, type(r.event)) for r in records] == [(1, PolicySet), (2, PolicySet)]
    assert isinstance(records[1].event, PolicySet) and records[1].event.version == 2
    assert await policies.current("ws-2") is None  # another workspace has its own


async def test_an_empty_list_is_a_policy_of_no_rules(policies: Policies) -> None:
    await policies.set_policy(person(), [PAYMENTS])
    cleared = await policies.set_policy(person(), [])
    assert (cleared.version, cleared.rules) == (2, [])
    assert await policies.current("ws-1") is not None


async def test_a_stale_expected_version_is_a_conflict(policies: Policies) -> None:
    await policies.set_policy(person(), [PAYMENTS])
    for stale in (0, 2):
        with pytest.raises(Conflict) as refused:
            await policies.set_policy(person(), [STAGING], expected_version=stale)
        assert refused.value.code == "policy_version_conflict"
        assert "version 1" in refused.value.message
    assert (await policies.view("ws-1")).rules == [PAYMENTS]


async def test_two_concurrent_sets_at_one_version_cannot_both_win(
    store: EventStore, policies: Policies
) -> None:
    results = await asyncio.gather(
        *(policies.set_policy(person(), [rule]) for rule in (PAYMENTS, STAGING)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], Conflict) and lost[0].code == "policy_version_conflict"
    view = await policies.view("ws-1")
    assert view.version == 1 and view.rules == won[0].rules
    assert len(await store.read_stream("policy-ws-1")) == 1


@pytest.mark.parametrize(
    "actor",
    [
        person("approver"),
        person("auditor"),
        Actor(id="apikey:k", tenant="ws-1", user_id="user-1", role="owner"),  # an agent key
        Actor(id="system", tenant="ws-1"),  # no person, no role
    ],
    ids=["approver", "auditor", "agent key", "system"],
)
async def test_only_a_person_who_manages_settings_sets_it(
    policies: Policies, store: EventStore, actor: Actor
) -> None:
    with pytest.raises(Forbidden) as refused:
        await policies.set_policy(actor, [PAYMENTS])
    assert refused.value.code == "role_forbids"
    assert await store.read_stream("policy-ws-1") == []


async def test_rules_are_validated_before_anything_is_recorded(
    policies: Policies, store: EventStore
) -> None:
    bad = Rule(name="bad", then=RuleThen(quorum=0))
    with pytest.raises(ValidationFailed) as refused:
        await policies.set_policy(person(), [PAYMENTS, bad])
    assert refused.value.code == "invalid_policy" and "rules[1] ('bad')" in refused.value.message
    assert await store.read_stream("policy-ws-1") == []


async def test_the_command_line_sets_as_the_workspaces_owner(policies: Policies) -> None:
    view = await policies.set_policy(cli_actor("ws-9"), [STAGING])
    assert (view.version, view.set_by) == (1, "cli")


def test_the_projection_is_registered() -> None:
    assert any(p.TABLE == "policies" and PolicySet in p.EVENTS for p in PROJECTIONS)
