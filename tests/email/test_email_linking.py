"""Linking an email address: asked over the API, confirmed from the mail, then mailed requests."""

from __future__ import annotations

import re
from email.message import EmailMessage
from urllib.parse import urlsplit

from aiohttp.test_utils import TestClient
from email_helpers import PASSWORD, EmailApp, csrf_in, links_in, text_of

ADDRESS = "carol@example.com"
_LINK = re.compile(r"(http\S+/email/link/\S+)")


async def _logged_in(mail: EmailApp, username: str) -> dict[str, str]:
    await mail.member(username)
    login = await mail.client.post(
        "/api/auth/login", json={"username": username, "password": PASSWORD}
    )
    assert login.status == 200, await login.text()
    return {"Authorization": f"Bearer {(await login.json())['token']}"}


def _link_path(sent: EmailMessage) -> str:
    found = _LINK.search(text_of(sent))
    assert found is not None, text_of(sent)
    return urlsplit(found.group(1)).path


async def _asked(mail: EmailApp, headers: dict[str, str], address: str = ADDRESS) -> str:
    asked = await mail.client.post("/v1/me/links/email", json={"address": address}, headers=headers)
    assert asked.status == 202, await asked.text()
    body = await asked.json()
    assert body["sent_to"] == address and body["expires_at"]
    (sent,) = await mail.mails_to(address)
    return _link_path(sent)


async def test_linking_an_address_then_getting_requests_there(mail: EmailApp) -> None:
    headers = await _logged_in(mail, "carol")
    path = await _asked(mail, headers)
    head = await mail.store.head()
    page = await mail.client.get(path)
    assert page.status == 200 and ADDRESS in await page.text()
    assert await mail.store.head() == head  # the GET linked nothing
    linked = await mail.client.post(path, data={"csrf_token": csrf_in(await page.text())})
    assert linked.status == 200, await linked.text()
    assert f"will be mailed to {ADDRESS}" in await linked.text()
    member = await mail.teams.identity("email", ADDRESS)
    assert member is not None and member.username == "carol"
    me = await (await mail.client.get("/v1/me", headers=headers)).json()
    assert [(i["channel"], i["external_id"]) for i in me["identities"]] == [("email", ADDRESS)]
    # And a request for carol is mailed to her.
    await mail.ask(approvers=["user:carol"])
    _, request_mail = await mail.mails_to(ADDRESS, 2)
    assert sorted(links_in(request_mail)) == ["Approve", "Reject"]


async def test_a_used_link_is_a_409_and_a_forged_one_a_404(mail: EmailApp) -> None:
    headers = await _logged_in(mail, "carol")
    path = await _asked(mail, headers)
    page = await mail.client.get(path)
    csrf = csrf_in(await page.text())
    assert (await mail.client.post(path, data={"csrf_token": csrf})).status == 200
    again = await mail.client.post(path, data={"csrf_token": csrf})
    assert again.status == 409
    shown = await mail.client.get(path)
    assert shown.status == 409 and "linked already" in await shown.text()
    # Another address in the same code: the token's mac no longer matches.
    payload, mac = path.rsplit("/", 1)[1].split(".")
    forged = await mail.client.get(f"/email/link/{payload[:-3]}xyz.{mac}")
    assert forged.status == 404
    carol = await mail.teams.identity("email", ADDRESS)
    assert carol is not None
    (linked,) = (await mail.teams.member(carol.workspace_id, carol.user_id)).identities
    assert linked.external_id == ADDRESS


async def test_the_link_form_needs_its_csrf_token(mail: EmailApp) -> None:
    headers = await _logged_in(mail, "carol")
    path = await _asked(mail, headers)
    refused = await mail.client.post(path, data={"csrf_token": "nope"})
    assert refused.status == 403
    assert await mail.teams.identity("email", ADDRESS) is None


async def test_a_bad_address_is_a_400(mail: EmailApp) -> None:
    headers = await _logged_in(mail, "carol")
    for address in (
        "nobody",
        "a@b",
        "Carol <carol@example.com>",
        "a b@example.com",
        "@example.com",
    ):
        refused = await mail.client.post(
            "/v1/me/links/email", json={"address": address}, headers=headers
        )
        assert refused.status == 400, address
        assert (await refused.json())["error"]["code"] == "invalid_address"
    missing = await mail.client.post("/v1/me/links/email", json={}, headers=headers)
    assert missing.status == 400
    assert mail.smtp.messages == []


async def test_an_address_the_server_refuses_is_a_400(mail: EmailApp) -> None:
    headers = await _logged_in(mail, "carol")
    mail.smtp.refused.add(ADDRESS)
    refused = await mail.client.post(
        "/v1/me/links/email", json={"address": ADDRESS}, headers=headers
    )
    assert refused.status == 400
    assert (await refused.json())["error"]["code"] == "address_refused"


async def test_the_open_modes_anonymous_caller_links_nothing(mail: EmailApp) -> None:
    refused = await mail.client.post("/v1/me/links/email", json={"address": ADDRESS})
    assert refused.status == 403
    assert mail.smtp.messages == []


async def test_without_email_there_is_no_email_to_link(client: TestClient[object, object]) -> None:
    refused = await client.post("/v1/me/links/email", json={"address": ADDRESS})
    assert refused.status == 404
    assert (await refused.json())["error"]["code"] == "unknown_channel"
