"""The Teams service on both stores: members, roles, groups, invitations, linked accounts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from loopgate.accounts.users import AccountService, password_context
from loopgate.commands.base import Actor
from loopgate.errors import Conflict, Forbidden, Gone, NotFound, ValidationFailed
from loopgate.store.base import EventStore
from loopgate.teams import Teams

PASSWORD = "correct horse battery"


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def teams(store: EventStore, clock: Clock) -> Teams:
    return Teams(store, clock=clock)


@pytest.fixture
def accounts(store: EventStore, clock: Clock, teams: Teams) -> AccountService:
    fast = password_context(memory_cost=1024, time_cost=1)
    return AccountService(store, jwt_secret="s" * 32, clock=clock, passwords=fast, teams=teams)


async def member(accounts: AccountService, name: str, role: str | None = None) -> Actor:
    user = await accounts.register_user(name, PASSWORD, role=role)  # type: ignore[arg-type]
    return await accounts.actor_for_user(user.user_id)


async def test_the_first_user_owns_the_default_workspace_and_roles_join_it(
    accounts: AccountService, teams: Teams
) -> None:
    alice = await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    assert (alice.tenant, alice.role, bob.tenant, bob.role) == (
        "local",
        "owner",
        "local",
        "approver",
    )
    assert [(m.username, m.role) for m in await teams.members("local")] == [
        ("alice", "owner"),
        ("bob", "approver"),
    ]


async def test_a_later_self_registration_gets_a_workspace_of_its_own(
    accounts: AccountService, teams: Teams
) -> None:
    await member(accounts, "alice")
    mallory = await member(accounts, "mallory")
    assert (mallory.tenant, mallory.role) == (mallory.user_id, "owner")
    assert [m.username for m in await teams.members("local")] == ["alice"]


async def test_the_last_owner_is_neither_removed_nor_demoted(
    accounts: AccountService, teams: Teams, store: EventStore
) -> None:
    alice = await member(accounts, "alice")
    head = await store.head()
    for change in (
        teams.change_role(alice, alice.user_id or "", "admin"),
        teams.remove_member(alice, alice.user_id or ""),
    ):
        with pytest.raises(Conflict) as raised:
            await change
        assert raised.value.code == "last_owner"
    assert await store.head() == head  # refused, nothing recorded
    bob = await member(accounts, "bob", "admin")
    await teams.change_role(alice, bob.user_id or "", "owner")
    await teams.change_role(alice, alice.user_id or "", "approver")
    assert {m.username: m.role for m in await teams.members("local")} == {
        "alice": "approver",
        "bob": "owner",
    }


async def test_an_admin_cannot_touch_an_owner_and_an_approver_manages_nobody(
    accounts: AccountService, teams: Teams
) -> None:
    alice = await member(accounts, "alice")
    admin = await member(accounts, "ada", "admin")
    carol = await member(accounts, "carol", "approver")
    with pytest.raises(Forbidden) as raised:
        await teams.change_role(admin, alice.user_id or "", "approver")
    assert raised.value.code == "role_forbids"
    with pytest.raises(Forbidden):
        await teams.change_role(admin, carol.user_id or "", "owner")
    with pytest.raises(Forbidden):
        await teams.remove_member(carol, admin.user_id or "")
    await teams.change_role(admin, carol.user_id or "", "auditor")
    assert (await accounts.actor_for_user(carol.user_id or "")).role == "auditor"


async def test_a_removed_member_keeps_no_role(accounts: AccountService, teams: Teams) -> None:
    alice = await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    await teams.remove_member(alice, bob.user_id or "")
    gone = await accounts.actor_for_user(bob.user_id or "")
    assert (gone.tenant, gone.role, gone.principals) == (bob.user_id, None, frozenset())


async def test_groups_name_members_and_route_to_them(
    accounts: AccountService, teams: Teams
) -> None:
    alice = await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    await member(accounts, "carol", "approver")
    group = await teams.define_group(alice, "finance", ["BOB"])
    assert group.members == ["bob"]
    assert "group:finance" in (await accounts.actor_for_user(bob.user_id or "")).principals
    routed = await teams.resolve("local", ["group:finance"])
    assert [m.username for m in routed] == ["bob"]
    everyone = await teams.resolve("local", ["role:approver"])
    assert [m.username for m in everyone] == ["alice", "bob", "carol"]
    with pytest.raises(ValidationFailed) as raised:
        await teams.define_group(alice, "finance", ["bob", "zed"])
    assert "'zed'" in raised.value.message
    await teams.delete_group(alice, "finance")
    with pytest.raises(NotFound):
        await teams.group("local", "finance")


async def test_an_invitation_works_once_and_not_after_seven_days(
    accounts: AccountService, teams: Teams, clock: Clock
) -> None:
    alice = await member(accounts, "alice")
    token, invitation = await teams.create_invitation(alice, "approver")
    assert invitation.expires_at == clock.now + timedelta(days=7)
    bob = await accounts.register_user("bob", PASSWORD, invitation_token=token)
    assert (await accounts.actor_for_user(bob.user_id)).role == "approver"
    with pytest.raises(Conflict) as used:
        await accounts.register_user("bob2", PASSWORD, invitation_token=token)
    assert used.value.code == "invitation_used"
    late, _ = await teams.create_invitation(alice, "auditor")
    clock.now += timedelta(days=7)
    with pytest.raises(Gone) as expired:
        await accounts.register_user("carl", PASSWORD, invitation_token=late)
    assert expired.value.code == "invitation_expired"
    with pytest.raises(NotFound):
        await accounts.register_user("dan", PASSWORD, invitation_token="nope")
    assert [m.username for m in await teams.members("local")] == ["alice", "bob"]


async def test_a_link_code_links_one_telegram_account_once(
    accounts: AccountService, teams: Teams, clock: Clock
) -> None:
    await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    code, expires_at = await teams.issue_link_code(bob, "telegram")
    assert expires_at == clock.now + timedelta(minutes=10)
    linked = await teams.link_identity(code, "telegram", "4242", "@bob")
    assert (linked.username, "telegram:4242" in linked.principals) == ("bob", True)
    assert (await teams.identity("telegram", "4242")) == linked
    with pytest.raises(Conflict) as used:
        await teams.link_identity(code, "telegram", "4242")
    assert used.value.code == "link_code_used"
    targets = await teams.targets("telegram", "local", ["user:bob", "telegram:99"])
    assert [t.address for t in targets] == ["4242", "99"]
    await teams.unlink_identity(bob, "telegram", "4242")
    assert await teams.identity("telegram", "4242") is None


async def test_a_link_code_expires_and_unknown_codes_link_nothing(
    accounts: AccountService, teams: Teams, clock: Clock
) -> None:
    bob = await member(accounts, "bob")
    code, _ = await teams.issue_link_code(bob, "telegram")
    clock.now += timedelta(minutes=10)
    with pytest.raises(Gone) as expired:
        await teams.link_identity(code, "telegram", "1")
    assert expired.value.code == "link_code_expired"
    with pytest.raises(NotFound) as unknown:
        await teams.link_identity("made-up", "telegram", "1")
    assert unknown.value.code == "link_code_not_found"
    with pytest.raises(NotFound):
        await teams.issue_link_code(bob, "carrier-pigeon")
    assert await teams.identity("telegram", "1") is None


async def test_one_telegram_account_acts_for_one_member(
    accounts: AccountService, teams: Teams
) -> None:
    alice = await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    first, _ = await teams.issue_link_code(alice, "telegram")
    await teams.link_identity(first, "telegram", "7")
    second, _ = await teams.issue_link_code(bob, "telegram")
    with pytest.raises(Conflict) as taken:
        await teams.link_identity(second, "telegram", "7")
    assert taken.value.code == "identity_taken"
    with pytest.raises(NotFound):
        await teams.unlink_identity(bob, "telegram", "7")


async def link(teams: Teams, actor: Actor, channel: str, external_id: str) -> None:
    code, _ = await teams.issue_link_code(actor, channel)
    await teams.link_identity(code, channel, external_id)


async def test_each_channel_delivers_to_the_routed_members_accounts_and_bare_selectors(
    accounts: AccountService, teams: Teams
) -> None:
    alice = await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    await link(teams, alice, "telegram", "42")
    await link(teams, alice, "slack", "UALICE")
    await link(teams, alice, "email", "alice@example.com")
    await link(teams, bob, "slack", "UBOB")
    approvers = ["user:alice", "telegram:42", "telegram:7", "slack:#ops"]
    telegram = await teams.targets("telegram", "local", approvers)
    slack = await teams.targets("slack", "local", approvers)
    email = await teams.targets("email", "local", approvers)
    # Alice's chat is hers (once, though a bare selector names it too); 7 is an outsider's.
    assert [(t.address, t.routed_by) for t in telegram] == [("42", None), ("7", "telegram:7")]
    # Bob is not routed by name: he sees it in #ops, not in a DM.
    assert [(t.address, t.routed_by) for t in slack] == [("UALICE", None), ("#ops", "slack:#ops")]
    assert [(t.address, t.routed_by) for t in email] == [("alice@example.com", None)]


async def test_a_slack_channel_counts_every_answering_member_linked_on_slack_as_a_voter(
    accounts: AccountService, teams: Teams
) -> None:
    alice = await member(accounts, "alice")
    bob = await member(accounts, "bob", "approver")
    carol = await member(accounts, "carol", "auditor")
    await member(accounts, "dave", "approver")  # on no Slack: not in any channel we know of
    for person, slack_id in ((bob, "UBOB"), (carol, "UCAROL")):
        await link(teams, person, "slack", slack_id)
    assert await teams.voters("local", ["slack:#ops"]) == {bob.user_id}
    assert await teams.voters("local", ["slack:#ops", "user:alice"]) == {
        alice.user_id,
        bob.user_id,
    }


async def test_every_linked_account_is_a_selector_its_member_answers_to(
    accounts: AccountService, teams: Teams
) -> None:
    bob = await member(accounts, "bob", "approver")
    await link(teams, bob, "slack", "UBOB")
    await link(teams, bob, "email", "bob@example.com")
    membership = await teams.identity("slack", "UBOB")
    assert membership is not None and membership.user_id == bob.user_id
    assert {"slack:UBOB", "email:bob@example.com", "user:bob"} <= membership.principals
