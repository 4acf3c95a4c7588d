"""The pure rules of workspaces: what a role may do, who a request is routed to, owners."""

from __future__ import annotations

import pytest

from loopgate.domain.teams import (
    ANY_PRINCIPAL,
    ROLE_TABLE,
    ROLES,
    allows,
    check_role_change,
    default_approvers,
    grantable,
    parse_approvers,
    principals_for,
    route_match,
)
from loopgate.errors import Conflict, ValidationFailed
from loopgate.events import Role


def test_only_owners_hand_on_ownership_and_auditors_never_answer() -> None:
    assert [r for r in ROLES if allows(r, "ownership.transfer")] == ["owner"]
    assert [r for r in ROLES if allows(r, "request.answer")] == ["owner", "admin", "approver"]
    assert [r for r in ROLES if allows(r, "audit.export")] == ["owner", "admin", "auditor"]
    assert [r for r in ROLES if allows(r, "members.manage")] == ["owner", "admin"]
    assert not allows("auditor", "request.create")
    assert all(allows(r, "request.read") for r in ROLES)


def test_no_role_may_do_nothing() -> None:
    assert not any(allows(None, p) for perms in ROLE_TABLE.values() for p in perms)


def test_owners_and_admins_count_as_approvers() -> None:
    assert "role:approver" in principals_for("ann", "owner")
    assert "role:approver" in principals_for("ann", "admin")
    assert "role:approver" in principals_for("ann", "approver")
    assert "role:approver" not in principals_for("ann", "auditor")


def test_a_member_matches_by_name_group_role_or_linked_telegram() -> None:
    bob = principals_for("bob", "approver", groups=["finance"], linked=["telegram:42"])
    assert route_match(["user:carol", "group:finance"], bob) == "group:finance"
    assert route_match(["telegram:42"], bob) == "telegram:42"
    assert route_match(["user:bob"], bob) == "user:bob"
    assert route_match(["group:ops", "role:auditor"], bob) is None
    carol = principals_for("carol", "approver")
    assert route_match(["group:finance"], carol) is None


def test_the_open_modes_anonymous_caller_matches_any_selector() -> None:
    anyone = frozenset({ANY_PRINCIPAL})
    assert route_match(["group:finance"], anyone) == ANY_PRINCIPAL
    assert route_match([], anyone) == ANY_PRINCIPAL


def test_a_request_naming_nobody_goes_to_the_sessions_operator_and_every_approver() -> None:
    assert default_approvers(1001) == ("telegram:1001", "role:approver")
    assert default_approvers(None) == ("role:approver",)


@pytest.mark.parametrize(
    ("selector", "says"),
    [
        ("bob", "is not user:<name>"),
        ("role:boss", "names an unknown role"),
        ("telegram:bob", "a Telegram id is a number"),
        ("user:", "is not user:<name>"),
    ],
)
def test_a_bad_selector_is_refused_by_name(selector: str, says: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        parse_approvers(["user:ann", selector])
    assert says in raised.value.message and selector in raised.value.message


def test_repeated_selectors_are_kept_once_in_order() -> None:
    assert parse_approvers(["group:a", "user:b", "group:a"]) == ("group:a", "user:b")


def test_the_last_owner_can_be_neither_removed_nor_demoted() -> None:
    news: tuple[Role | None, ...] = (None, "admin", "approver", "auditor")
    for new in news:
        with pytest.raises(Conflict) as raised:
            check_role_change(1, "owner", new)
        assert raised.value.code == "last_owner"
    check_role_change(2, "owner", None)
    check_role_change(1, "admin", None)


def test_admins_manage_everyone_but_owners() -> None:
    assert grantable("admin", "approver", "auditor")
    assert grantable("admin", None, "admin")
    assert not grantable("admin", "owner", "admin")
    assert not grantable("admin", "approver", "owner")
    assert grantable("owner", "approver", "owner")
    assert not grantable("approver", "auditor", "approver")


def test_a_slack_channel_is_a_selector_by_name_or_id() -> None:
    assert parse_approvers(["slack:#ops", "slack:C0123ABC"]) == ("slack:#ops", "slack:C0123ABC")
    for bad in ("slack:ops", "slack:#Ops", "slack:#"):
        with pytest.raises(ValidationFailed, match="Slack channel"):
            parse_approvers([bad])
