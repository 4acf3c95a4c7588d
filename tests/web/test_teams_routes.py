"""Managing people over HTTP: members, invitations, groups and the caller's linked accounts.

Each route's success and each of its refusals, on both stores. The full role
x route table is ``tests/web/test_role_matrix.py``'s; here each refusal is
shown once per role that meets it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
from account_helpers import Client, FakeClock, User, api_key, new_key, sign_up, unique
from hitl_helpers import assert_error, event_types
from teams_helpers import add_member, first_owner, invite, join, members_of
from telegram.fake_bot_api import BOT_USER, running_fake
from telegram.helpers import telegram_config

from loopgate.config import Config
from loopgate.store.base import EventStore
from loopgate.web.app import create_app
from loopgate.web.keys import TEAMS, TELEGRAM


@pytest.fixture
async def team(keyed_client: Client) -> dict[str, User]:
    """A workspace (the default one) with one member of each role."""
    owner = await first_owner(keyed_client)
    return {
        "owner": owner,
        "admin": await add_member(keyed_client, owner, "ada", "admin"),
        "approver": await add_member(keyed_client, owner, "bob", "approver"),
        "auditor": await add_member(keyed_client, owner, "aud", "auditor"),
    }


async def agent_key_of(client: Client, user: User) -> dict[str, str]:
    return api_key((await new_key(client, user, label="bot"))["raw_key"])


# --- members ------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "approver", "auditor"])
async def test_every_member_lists_the_workspace_with_roles(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    members = await members_of(keyed_client, team[role])
    assert {m["role"] for m in members.values()} == {"owner", "admin", "approver", "auditor"}
    bob = members[team["approver"].username]
    assert bob["user_id"] == team["approver"].user_id
    assert bob["groups"] == [] and bob["identities"] == []
    assert "added_at" in bob


async def test_an_agent_key_may_read_the_members(
    keyed_client: Client, team: dict[str, User]
) -> None:
    headers = await agent_key_of(keyed_client, team["owner"])
    response = await keyed_client.get("/v1/members", headers=headers)
    assert response.status == 200, await response.text()
    assert len(await response.json()) == 4


async def test_an_owner_adds_a_member_who_can_then_sign_in(
    keyed_client: Client, team: dict[str, User]
) -> None:
    carol = await add_member(keyed_client, team["owner"], "carol", "approver")
    members = await members_of(keyed_client, carol)
    assert members[carol.username]["role"] == "approver"
    assert team["owner"].username in members  # the same workspace


async def test_an_admin_adds_members_but_not_owners(
    keyed_client: Client, team: dict[str, User]
) -> None:
    await add_member(keyed_client, team["admin"], "dave", "auditor")
    body = {"username": unique("eve"), "password": "correct horse battery staple"}
    response = await keyed_client.post(
        "/v1/members", json={**body, "role": "owner"}, headers=team["admin"].bearer
    )
    await assert_error(response, 403, "role_forbids")


@pytest.mark.parametrize("role", ["approver", "auditor"])
async def test_approvers_and_auditors_add_nobody(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    body = {
        "username": unique("eve"),
        "password": "correct horse battery staple",
        "role": "approver",
    }
    response = await keyed_client.post("/v1/members", json=body, headers=team[role].bearer)
    await assert_error(response, 403, "role_forbids")


async def test_an_agent_key_of_an_owner_manages_nobody(
    keyed_client: Client, team: dict[str, User]
) -> None:
    headers = await agent_key_of(keyed_client, team["owner"])
    body = {
        "username": unique("eve"),
        "password": "correct horse battery staple",
        "role": "approver",
    }
    await assert_error(
        await keyed_client.post("/v1/members", json=body, headers=headers), 403, "role_forbids"
    )
    path = f"/v1/members/{team['approver'].user_id}"
    await assert_error(
        await keyed_client.patch(path, json={"role": "auditor"}, headers=headers),
        403,
        "role_forbids",
    )
    await assert_error(await keyed_client.delete(path, headers=headers), 403, "role_forbids")
    await assert_error(
        await keyed_client.post("/v1/invitations", json={"role": "approver"}, headers=headers),
        403,
        "role_forbids",
    )
    await assert_error(
        await keyed_client.put("/v1/groups/ops", json={"members": []}, headers=headers),
        403,
        "role_forbids",
    )


@pytest.mark.parametrize(
    "body",
    [
        {"username": "x", "password": "correct horse battery staple", "role": "boss"},
        {"username": "fine_name", "role": "approver"},
        {"username": "fine_name", "password": "short", "role": "approver"},
        {"username": "bad name!", "password": "correct horse battery staple", "role": "approver"},
    ],
    ids=["unknown-role", "no-password", "short-password", "bad-username"],
)
async def test_a_bad_new_member_is_a_400(
    keyed_client: Client, team: dict[str, User], body: dict[str, Any], store: EventStore
) -> None:
    before = await store.head()
    response = await keyed_client.post("/v1/members", json=body, headers=team["owner"].bearer)
    assert response.status == 400, await response.text()
    assert await store.head() == before


async def test_a_taken_username_is_a_409(keyed_client: Client, team: dict[str, User]) -> None:
    body = {
        "username": team["approver"].username,
        "password": "correct horse battery staple",
        "role": "approver",
    }
    response = await keyed_client.post("/v1/members", json=body, headers=team["owner"].bearer)
    await assert_error(response, 409, "username_taken")


async def test_an_owner_changes_a_role(keyed_client: Client, team: dict[str, User]) -> None:
    bob = team["approver"]
    response = await keyed_client.patch(
        f"/v1/members/{bob.user_id}", json={"role": "auditor"}, headers=team["owner"].bearer
    )
    assert response.status == 200, await response.text()
    assert (await response.json())["role"] == "auditor"
    assert (await members_of(keyed_client, bob))[bob.username]["role"] == "auditor"


async def test_an_admin_changes_roles_but_never_an_owners(
    keyed_client: Client, team: dict[str, User]
) -> None:
    admin = team["admin"].bearer
    response = await keyed_client.patch(
        f"/v1/members/{team['auditor'].user_id}", json={"role": "approver"}, headers=admin
    )
    assert response.status == 200, await response.text()
    for user_id, role in [(team["owner"].user_id, "admin"), (team["approver"].user_id, "owner")]:
        response = await keyed_client.patch(
            f"/v1/members/{user_id}", json={"role": role}, headers=admin
        )
        await assert_error(response, 403, "role_forbids")


@pytest.mark.parametrize("role", ["approver", "auditor"])
async def test_approvers_and_auditors_change_no_role(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    response = await keyed_client.patch(
        f"/v1/members/{team['admin'].user_id}", json={"role": "auditor"}, headers=team[role].bearer
    )
    await assert_error(response, 403, "role_forbids")


async def test_the_last_owner_is_neither_demoted_nor_removed(
    keyed_client: Client, team: dict[str, User], store: EventStore
) -> None:
    owner = team["owner"]
    path = f"/v1/members/{owner.user_id}"
    before = await store.head()
    response = await keyed_client.patch(path, json={"role": "admin"}, headers=owner.bearer)
    await assert_error(response, 409, "last_owner")
    await assert_error(await keyed_client.delete(path, headers=owner.bearer), 409, "last_owner")
    assert await store.head() == before


async def test_with_a_second_owner_the_first_may_step_down(
    keyed_client: Client, team: dict[str, User]
) -> None:
    owner, ada = team["owner"], team["admin"]
    promoted = await keyed_client.patch(
        f"/v1/members/{ada.user_id}", json={"role": "owner"}, headers=owner.bearer
    )
    assert promoted.status == 200, await promoted.text()
    stepped = await keyed_client.patch(
        f"/v1/members/{owner.user_id}", json={"role": "admin"}, headers=owner.bearer
    )
    assert stepped.status == 200, await stepped.text()


async def test_an_unknown_member_is_a_404(keyed_client: Client, team: dict[str, User]) -> None:
    owner = team["owner"].bearer
    path = "/v1/members/no-such-user"
    await assert_error(
        await keyed_client.patch(path, json={"role": "admin"}, headers=owner),
        404,
        "member_not_found",
    )
    await assert_error(await keyed_client.delete(path, headers=owner), 404, "member_not_found")


async def test_a_bad_role_change_is_a_400(keyed_client: Client, team: dict[str, User]) -> None:
    path = f"/v1/members/{team['approver'].user_id}"
    for body in ({"role": "boss"}, {}, {"role": None}):
        response = await keyed_client.patch(path, json=body, headers=team["owner"].bearer)
        assert response.status == 400, (body, await response.text())


async def test_a_removed_member_is_gone_and_acts_no_more(
    keyed_client: Client, team: dict[str, User]
) -> None:
    bob = team["approver"]
    response = await keyed_client.delete(f"/v1/members/{bob.user_id}", headers=team["admin"].bearer)
    assert response.status == 200, await response.text()
    assert (await response.json())["user_id"] == bob.user_id
    assert bob.username not in await members_of(keyed_client, team["owner"])
    # bob's old token no longer reads the workspace's people
    gone = await keyed_client.get("/v1/members", headers=bob.bearer)
    assert gone.status in (401, 403), await gone.text()


@pytest.mark.parametrize("role", ["approver", "auditor"])
async def test_approvers_and_auditors_remove_nobody(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    response = await keyed_client.delete(
        f"/v1/members/{team['admin'].user_id}", headers=team[role].bearer
    )
    await assert_error(response, 403, "role_forbids")


# --- invitations --------------------------------------------------------------------------


async def test_an_invitation_is_an_absolute_link_to_the_join_page(
    keyed_client: Client, team: dict[str, User], store: EventStore
) -> None:
    response = await keyed_client.post(
        "/v1/invitations", json={"role": "approver"}, headers=team["owner"].bearer
    )
    assert response.status == 201, await response.text()
    made = await response.json()
    assert set(made) == {"invitation_id", "role", "url", "expires_at"}
    url = urlsplit(made["url"])
    assert url.scheme == "http" and url.netloc == f"{keyed_client.host}:{keyed_client.port}"
    assert url.path.startswith("/console/join/")
    token = url.path.removeprefix("/console/join/")
    assert len(token) >= 32
    # only its hash is kept
    assert all(token not in str(record.event) for record in await store.read_all())
    assert "invitation.created" in await event_types(store)


@pytest.mark.parametrize("role", ["approver", "auditor"])
async def test_approvers_and_auditors_invite_nobody(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    response = await keyed_client.post(
        "/v1/invitations", json={"role": "approver"}, headers=team[role].bearer
    )
    await assert_error(response, 403, "role_forbids")


async def test_an_admin_invites_but_not_an_owner(
    keyed_client: Client, team: dict[str, User]
) -> None:
    admin = team["admin"].bearer
    ok = await keyed_client.post("/v1/invitations", json={"role": "admin"}, headers=admin)
    assert ok.status == 201, await ok.text()
    refused = await keyed_client.post("/v1/invitations", json={"role": "owner"}, headers=admin)
    await assert_error(refused, 403, "role_forbids")


async def test_a_bad_invitation_body_is_a_400(keyed_client: Client, team: dict[str, User]) -> None:
    for body in ({"role": "boss"}, {}):
        response = await keyed_client.post(
            "/v1/invitations", json=body, headers=team["owner"].bearer
        )
        assert response.status == 400, (body, await response.text())


async def test_an_invitation_joins_the_workspace_with_its_role_once(
    keyed_client: Client, team: dict[str, User]
) -> None:
    path = await invite(keyed_client, team["owner"], "auditor")
    frank = unique("frank")
    joined = await join(keyed_client, path, frank)
    assert joined.status == 303, await joined.text()
    assert joined.headers["Location"] == "/console"
    queue = await keyed_client.get("/console", allow_redirects=False)
    assert queue.status == 200  # signed in
    assert (await members_of(keyed_client, team["owner"]))[frank]["role"] == "auditor"

    keyed_client.session.cookie_jar.clear()
    again = await keyed_client.get(path)
    assert again.status == 409
    assert "already used" in await again.text()


async def test_an_expired_invitation_is_refused(
    keyed_client: Client, team: dict[str, User], clock: FakeClock
) -> None:
    path = await invite(keyed_client, team["owner"], "approver")
    clock.advance(7 * 24 * 3600 + 1)
    keyed_client.session.cookie_jar.clear()
    page = await keyed_client.get(path)
    assert page.status == 410
    assert "expired" in await page.text()


async def test_an_unknown_invitation_is_a_404_page(keyed_client: Client) -> None:
    page = await keyed_client.get("/console/join/not-a-token", allow_redirects=False)
    assert page.status == 404


# --- groups -------------------------------------------------------------------------------


async def test_groups_are_defined_read_replaced_and_deleted(
    keyed_client: Client, team: dict[str, User]
) -> None:
    owner, bob, ada = team["owner"], team["approver"], team["admin"]
    put = await keyed_client.put(
        "/v1/groups/finance", json={"members": [bob.username]}, headers=ada.bearer
    )
    assert put.status == 200, await put.text()
    assert (await put.json())["members"] == [bob.username]

    listed = await keyed_client.get("/v1/groups", headers=team["auditor"].bearer)
    assert [g["name"] for g in await listed.json()] == ["finance"]
    one = await keyed_client.get("/v1/groups/finance", headers=bob.bearer)
    assert (await one.json())["members"] == [bob.username]
    assert (await members_of(keyed_client, owner))[bob.username]["groups"] == ["finance"]

    replaced = await keyed_client.put(
        "/v1/groups/finance", json={"members": [ada.username, owner.username]}, headers=owner.bearer
    )
    assert sorted((await replaced.json())["members"]) == sorted([ada.username, owner.username])

    deleted = await keyed_client.delete("/v1/groups/finance", headers=owner.bearer)
    assert deleted.status == 200, await deleted.text()
    gone = await keyed_client.get("/v1/groups/finance", headers=owner.bearer)
    await assert_error(gone, 404, "group_not_found")
    await assert_error(
        await keyed_client.delete("/v1/groups/finance", headers=owner.bearer),
        404,
        "group_not_found",
    )


async def test_an_unknown_username_in_a_group_is_a_400_naming_it(
    keyed_client: Client, team: dict[str, User], store: EventStore
) -> None:
    before = await store.head()
    response = await keyed_client.put(
        "/v1/groups/finance",
        json={"members": [team["approver"].username, "nobody_here"]},
        headers=team["owner"].bearer,
    )
    message = await assert_error(response, 400, "validation_failed")
    assert "nobody_here" in message
    assert await store.head() == before


@pytest.mark.parametrize("body", [{}, {"members": "bob"}, {"members": [1]}])
async def test_a_bad_group_body_is_a_400(
    keyed_client: Client, team: dict[str, User], body: dict[str, Any]
) -> None:
    response = await keyed_client.put("/v1/groups/finance", json=body, headers=team["owner"].bearer)
    assert response.status == 400, await response.text()


@pytest.mark.parametrize("role", ["approver", "auditor"])
async def test_approvers_and_auditors_read_groups_but_never_change_them(
    keyed_client: Client, team: dict[str, User], role: str
) -> None:
    headers = team[role].bearer
    assert (await keyed_client.get("/v1/groups", headers=headers)).status == 200
    await assert_error(
        await keyed_client.put("/v1/groups/ops", json={"members": []}, headers=headers),
        403,
        "role_forbids",
    )
    await assert_error(
        await keyed_client.delete("/v1/groups/ops", headers=headers), 403, "role_forbids"
    )


async def test_an_unknown_group_is_a_404(keyed_client: Client, team: dict[str, User]) -> None:
    response = await keyed_client.get("/v1/groups/none", headers=team["owner"].bearer)
    await assert_error(response, 404, "group_not_found")


# --- me and my linked accounts ------------------------------------------------------------


async def test_me_says_workspace_role_and_linked_accounts(
    keyed_client: Client, team: dict[str, User]
) -> None:
    bob = team["approver"]
    response = await keyed_client.get("/v1/me", headers=bob.bearer)
    assert response.status == 200, await response.text()
    me = await response.json()
    assert me == {
        "user_id": bob.user_id,
        "username": bob.username,
        "workspace_id": "local",
        "role": "approver",
        "identities": [],
    }


async def test_a_link_code_links_a_telegram_account_which_can_be_unlinked(
    keyed_client: Client, team: dict[str, User], store: EventStore
) -> None:
    bob = team["approver"]
    response = await keyed_client.post("/v1/me/links/telegram", headers=bob.bearer)
    assert response.status == 201, await response.text()
    made = await response.json()
    assert set(made) == {"channel", "code", "deep_link", "how", "expires_at"}
    assert made["deep_link"] is None  # this server runs no bot
    assert all(made["code"] not in str(record.event) for record in await store.read_all())

    # what the bot's /start <code> handler does
    await keyed_client.app[TEAMS].link_identity(made["code"], "telegram", "4242", "bob_tg")
    me = await (await keyed_client.get("/v1/me", headers=bob.bearer)).json()
    assert [(i["channel"], i["external_id"], i["display"]) for i in me["identities"]] == [
        ("telegram", "4242", "bob_tg")
    ]

    unlinked = await keyed_client.delete("/v1/me/links/telegram/4242", headers=bob.bearer)
    assert unlinked.status == 200, await unlinked.text()
    me = await (await keyed_client.get("/v1/me", headers=bob.bearer)).json()
    assert me["identities"] == []


async def test_a_channel_loopgate_does_not_know_cannot_be_linked(
    keyed_client: Client, team: dict[str, User]
) -> None:
    headers = team["approver"].bearer
    for method in ("post", "delete"):
        path = "/v1/me/links/discord" + ("/U123" if method == "delete" else "")
        response = await getattr(keyed_client, method)(path, headers=headers)
        await assert_error(response, 404, "unknown_channel")


async def test_unlinking_an_account_nobody_linked_is_a_404(
    keyed_client: Client, team: dict[str, User]
) -> None:
    response = await keyed_client.delete(
        "/v1/me/links/telegram/999", headers=team["approver"].bearer
    )
    assert response.status == 404, await response.text()


async def test_an_agent_key_links_nothing(keyed_client: Client, team: dict[str, User]) -> None:
    headers = await agent_key_of(keyed_client, team["approver"])
    response = await keyed_client.post("/v1/me/links/telegram", headers=headers)
    await assert_error(response, 403, "role_forbids")


async def test_people_in_another_workspace_are_not_seen(
    keyed_client: Client, team: dict[str, User]
) -> None:
    stranger = await sign_up(keyed_client, "stranger")  # a workspace of their own
    members = await members_of(keyed_client, stranger)
    assert list(members) == [stranger.username]
    response = await keyed_client.delete(
        f"/v1/members/{team['approver'].user_id}", headers=stranger.bearer
    )
    await assert_error(response, 404, "member_not_found")


async def test_with_a_bot_the_link_code_comes_with_its_deep_link(
    aiohttp_client: Any, store: EventStore, config: Config
) -> None:
    async with running_fake() as fake:
        telegram = telegram_config(fake)
        app = create_app(msgspec.structs.replace(config, telegram=telegram), store=store)
        client = await aiohttp_client(app)
        async with asyncio.timeout(5):  # the bot asks getMe at start, in the background
            await app[TELEGRAM].identified.wait()
        user = await first_owner(client)
        response = await client.post("/v1/me/links/telegram", headers=user.bearer)
        assert response.status == 201, await response.text()
        made = await response.json()
        bot = BOT_USER["username"]
        assert made["deep_link"] == f"https://t.me/{bot}?start={made['code']}"
        await client.close()
