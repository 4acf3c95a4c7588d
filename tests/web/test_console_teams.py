"""The console's people pages (members, invitations, groups, linked accounts), the join page
and the queue's "Routed to me" and "All" tabs, on both stores."""

from __future__ import annotations

import re

import pytest
from account_helpers import PASSWORD, Client, User, unique
from console_helpers import agent_session, as_, ask, submit, text_of
from teams_helpers import add_member, first_owner, invite, join, members_of

from loopgate.web.keys import TEAMS


@pytest.fixture
async def team(keyed_client: Client) -> dict[str, User]:
    owner = await first_owner(keyed_client)
    return {
        "owner": owner,
        "admin": await add_member(keyed_client, owner, "ada", "admin"),
        "approver": await add_member(keyed_client, owner, "bob", "approver"),
        "auditor": await add_member(keyed_client, owner, "aud", "auditor"),
    }


def card_ids(page: str) -> list[str]:
    return re.findall(r'data-request-id="([^"]+)"', page)


# --- members ------------------------------------------------------------------------------


async def test_the_members_page_lists_everyone_and_owners_get_the_forms(
    keyed_client: Client, team: dict[str, User]
) -> None:
    await as_(keyed_client, team["owner"])
    page = await (await keyed_client.get("/console/members")).text()
    text = text_of(page)
    for role, user in team.items():
        assert user.username in text and role in text
    assert 'action="/console/members/role"' in page
    assert 'action="/console/members/remove"' in page
    assert "Invite someone" in text

    await as_(keyed_client, team["approver"])
    page = await (await keyed_client.get("/console/members")).text()
    assert team["owner"].username in text_of(page)
    assert 'action="/console/members/role"' not in page and "Invite someone" not in page


async def test_an_owner_changes_a_role_and_removes_a_member_from_the_page(
    keyed_client: Client, team: dict[str, User]
) -> None:
    owner, bob, aud = team["owner"], team["approver"], team["auditor"]
    await as_(keyed_client, owner)
    changed = await submit(keyed_client, "/console/members/role", user_id=bob.user_id, role="admin")
    assert changed.status == 303
    assert changed.headers["Location"] == "/console/members?notice=role_changed"
    assert (await members_of(keyed_client, owner))[bob.username]["role"] == "admin"

    removed = await submit(keyed_client, "/console/members/remove", user_id=aud.user_id)
    assert removed.status == 303
    page = await (await keyed_client.get(removed.headers["Location"])).text()
    assert "Member removed" in page and aud.username not in text_of(page)


async def test_the_last_owner_stays_and_the_page_says_why(
    keyed_client: Client, team: dict[str, User]
) -> None:
    owner = team["owner"]
    await as_(keyed_client, owner)
    refused = await submit(
        keyed_client, "/console/members/role", user_id=owner.user_id, role="admin"
    )
    assert refused.status == 409
    assert "last owner" in text_of(await refused.text())
    refused = await submit(keyed_client, "/console/members/remove", user_id=owner.user_id)
    assert refused.status == 409
    assert (await members_of(keyed_client, owner))[owner.username]["role"] == "owner"


async def test_an_approver_posting_the_role_form_is_refused(
    keyed_client: Client, team: dict[str, User]
) -> None:
    await as_(keyed_client, team["approver"])
    refused = await submit(
        keyed_client, "/console/members/role", user_id=team["auditor"].user_id, role="owner"
    )
    assert refused.status == 403
    assert (await members_of(keyed_client, team["owner"]))[team["auditor"].username][
        "role"
    ] == "auditor"


# --- invitations and joining --------------------------------------------------------------


async def test_an_invitation_made_on_the_page_is_shown_once_and_joins(
    keyed_client: Client, team: dict[str, User]
) -> None:
    await as_(keyed_client, team["admin"])
    made = await submit(keyed_client, "/console/invitations", role="approver")
    assert made.status == 201
    page = await made.text()
    found = re.search(r"data-invitation-url>([^<]+)</textarea>", page)
    assert found is not None, page
    url = found.group(1)
    assert url.startswith(f"http://{keyed_client.host}:{keyed_client.port}/console/join/")
    assert url not in await (await keyed_client.get("/console/invitations")).text()

    newbie = unique("newbie")
    joined = await join(keyed_client, url.split(str(keyed_client.port), 1)[1], newbie)
    assert joined.status == 303 and joined.headers["Location"] == "/console"
    queue = await keyed_client.get("/console")
    assert f"Signed in as {newbie}" in text_of(await queue.text())
    assert (await members_of(keyed_client, team["owner"]))[newbie]["role"] == "approver"


async def test_an_approver_cannot_invite_from_the_page(
    keyed_client: Client, team: dict[str, User]
) -> None:
    await as_(keyed_client, team["approver"])
    page = await (await keyed_client.get("/console/invitations")).text()
    assert "Only an owner or an admin invites people." in text_of(page)
    refused = await submit(keyed_client, "/console/invitations", role="approver")
    assert refused.status == 403


async def test_the_join_form_checks_its_fields_and_keeps_the_invitation_open(
    keyed_client: Client, team: dict[str, User]
) -> None:
    path = await invite(keyed_client, team["owner"], "approver")
    differ = await join(keyed_client, path, unique("gil"), again="another password entirely")
    assert differ.status == 400 and "passwords differ" in await differ.text()
    taken = await join(keyed_client, path, team["approver"].username)
    assert taken.status == 409
    short = await join(keyed_client, path, unique("gil"), password="short", again="short")
    assert short.status == 400
    works = await join(keyed_client, path, unique("gil"))
    assert works.status == 303


async def test_a_signed_in_visitor_is_asked_to_sign_out_before_joining(
    keyed_client: Client, team: dict[str, User]
) -> None:
    path = await invite(keyed_client, team["owner"], "approver")
    await as_(keyed_client, team["owner"])
    page = await keyed_client.get(path)
    assert page.status == 200
    assert "sign out first" in text_of(await page.text())
    posted = await submit(keyed_client, path, username=unique("x"), password=PASSWORD)
    assert posted.status == 409


async def test_the_join_page_needs_its_csrf_token(
    keyed_client: Client, team: dict[str, User]
) -> None:
    path = await invite(keyed_client, team["owner"], "approver")
    keyed_client.session.cookie_jar.clear()
    await keyed_client.get(path)
    forged = await keyed_client.post(
        path,
        data={"csrf_token": "forged", "username": unique("m"), "password": PASSWORD},
        allow_redirects=False,
    )
    assert forged.status == 403


# --- groups -------------------------------------------------------------------------------


async def test_groups_are_saved_edited_and_deleted_from_the_page(
    keyed_client: Client, team: dict[str, User]
) -> None:
    bob, ada = team["approver"], team["admin"]
    await as_(keyed_client, ada)
    saved = await keyed_client.post(
        "/console/groups",
        data=[
            ("csrf_token", await _token(keyed_client)),
            ("name", "finance"),
            ("members", bob.username),
            ("members", ada.username),
        ],
        allow_redirects=False,
    )
    assert saved.status == 303, await saved.text()
    page = await (await keyed_client.get("/console/groups")).text()
    assert "group:finance" in text_of(page)
    edit = await (await keyed_client.get("/console/groups?edit=finance")).text()
    assert f'value="{bob.username}" checked' in edit and 'value="finance"' in edit

    unknown = await submit(keyed_client, "/console/groups", name="ops", members="ghost_user")
    assert unknown.status == 400 and "ghost_user" in await unknown.text()

    deleted = await submit(keyed_client, "/console/groups/delete", name="finance")
    assert deleted.status == 303
    assert "group:finance" not in text_of(await (await keyed_client.get("/console/groups")).text())


async def test_an_auditor_sees_groups_without_the_forms(
    keyed_client: Client, team: dict[str, User]
) -> None:
    await as_(keyed_client, team["auditor"])
    page = await (await keyed_client.get("/console/groups")).text()
    assert 'action="/console/groups"' not in page
    refused = await submit(keyed_client, "/console/groups", name="ops")
    assert refused.status == 403


async def _token(client: Client) -> str:
    page = await (await client.get("/console/groups")).text()
    found = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert found is not None
    return found.group(1)


# --- my linked accounts -------------------------------------------------------------------


async def test_a_member_makes_a_link_code_sees_the_link_and_unlinks_it(
    keyed_client: Client, team: dict[str, User]
) -> None:
    bob = team["approver"]
    await as_(keyed_client, bob)
    page = await (await keyed_client.get("/console/links")).text()
    assert "No linked accounts yet." in page
    made = await submit(keyed_client, "/console/links/telegram")
    assert made.status == 201
    found = re.search(r"data-link-code>/start ([A-Za-z0-9_-]+)</textarea>", await made.text())
    assert found is not None

    await keyed_client.app[TEAMS].link_identity(found.group(1), "telegram", "777", "bob_phone")
    page = await (await keyed_client.get("/console/links")).text()
    assert "bob_phone" in text_of(page) and "777" in page

    unlinked = await submit(
        keyed_client, "/console/links/unlink", channel="telegram", external_id="777"
    )
    assert unlinked.status == 303
    page = await (await keyed_client.get(unlinked.headers["Location"])).text()
    assert "Account unlinked" in page and "No linked accounts yet." in page


# --- the queue's tabs ---------------------------------------------------------------------


async def test_the_queue_shows_what_is_routed_to_me_and_admins_see_all(
    keyed_client: Client, team: dict[str, User]
) -> None:
    owner, bob, aud = team["owner"], team["approver"], team["auditor"]
    await agent_session(keyed_client, owner)
    for_bob = await ask(keyed_client, owner, "For bob?", approvers=[f"user:{bob.username}"])
    for_all = await ask(keyed_client, owner, "For any approver?", approvers=["role:approver"])

    await as_(keyed_client, bob)
    page = await (await keyed_client.get("/console")).text()
    assert sorted(card_ids(page)) == sorted([for_bob, for_all])
    assert "?show=all" not in page  # no All tab for an approver
    assert card_ids(await (await keyed_client.get("/console?show=all")).text()) == card_ids(page)

    await as_(keyed_client, owner)
    mine = await (await keyed_client.get("/console")).text()
    assert card_ids(mine) == [for_all] and "Routed to me" in mine
    everything = await (await keyed_client.get("/console?show=all")).text()
    assert sorted(card_ids(everything)) == sorted([for_bob, for_all])
    assert (await keyed_client.get(f"/console/requests/{for_bob}/card")).status == 204
    assert (await keyed_client.get(f"/console/requests/{for_bob}/card?show=all")).status == 200

    await as_(keyed_client, aud)
    assert card_ids(await (await keyed_client.get("/console")).text()) == []  # never answers


async def test_the_default_workspace_needs_no_hint_about_anonymous_agents(
    open_client: Client,
) -> None:
    owner = await first_owner(open_client)
    await as_(open_client, owner)
    page = await (await open_client.get("/console")).text()
    assert "data-anonymous-hint" not in page  # anonymous agents' requests are in this very queue
