"""Answering from a mail: a GET shows, the confirm POST decides, a link works once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from email_helpers import EmailApp, csrf_in, links_in

from loopgate.channels.email.links import AnswerLink
from loopgate.events import AnswerRefused, RequestDelivered, ResponseReceived, VoteCast

ALICE, BOB = "alice@example.com", "bob@example.com"


async def _mailed(
    mail: EmailApp, *names: str, **ask: object
) -> tuple[str, dict[str, dict[str, str]]]:
    """A request routed to these members, each linked to ``<name>@example.com``; their links."""
    for name in names:
        await mail.link_address(await mail.member(name), f"{name}@example.com")
    request_id = await mail.ask(approvers=[f"user:{n}" for n in names], **ask)
    await mail.wait_for(request_id, RequestDelivered, count=len(names))  # recorded, not just sent
    links = {}
    for name in names:
        (sent,) = await mail.mails_to(f"{name}@example.com")
        links[name] = links_in(sent)
    return request_id, links


async def test_opening_a_link_shows_the_request_and_changes_nothing(mail: EmailApp) -> None:
    _, links = await _mailed(mail, "alice", action={"tool": "deploy", "args": {"env": "prod"}})
    head = await mail.store.head()
    page = await mail.client.get(links["alice"]["Approve"])
    assert page.status == 200
    text = await page.text()
    assert "You are answering as alice: Approve." in text
    assert "Deploy v2 to prod?" in text and "deploy" in text and "prod" in text
    assert 'method="post"' in text and csrf_in(text)
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    head_after = await mail.store.head()
    assert head_after == head
    (await mail.client.head(links["alice"]["Approve"])).close()
    assert await mail.store.head() == head


async def test_the_confirm_post_decides_as_the_member(mail: EmailApp) -> None:
    request_id, links = await _mailed(mail, "alice")
    done = await mail.confirm(links["alice"]["Approve"])
    assert done.status == 200
    assert "Recorded: you answered “Approve”. Decided: approved by alice at " in await done.text()
    decided = await (await mail.client.get(f"/v1/requests/{request_id}")).json()
    alice = await mail.teams.identity("email", ALICE)
    assert alice is not None
    assert decided["outcome"] == "approved"
    assert decided["decided_by"] == {
        "kind": "human",
        "id": alice.user_id,
        "channel": "email",
        "routed_by": "user:alice",
    }
    (response,) = [
        r
        for r in await mail.store.read_stream(f"request-{request_id}")
        if isinstance(r.event, ResponseReceived)
    ]
    assert response.meta.actor == f"email:{ALICE}"


async def test_a_post_without_the_right_csrf_token_is_refused(mail: EmailApp) -> None:
    _, links = await _mailed(mail, "alice")
    path = links["alice"]["Approve"]
    other = await (await mail.client.get(links["alice"]["Reject"])).text()
    head = await mail.store.head()
    for form in ({}, {"csrf_token": "nope"}, {"csrf_token": csrf_in(other)}):
        refused = await mail.client.post(path, data=form)
        assert refused.status == 403
        assert "did not come from the link" in await refused.text()
    page = await mail.client.get(path)
    cross = await mail.client.post(
        path,
        data={"csrf_token": csrf_in(await page.text())},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status == 403
    assert await mail.store.head() == head


async def test_a_used_link_says_so_whatever_option(mail: EmailApp) -> None:
    _, links = await _mailed(mail, "alice")
    assert (await mail.confirm(links["alice"]["Approve"])).status == 200
    for path in links["alice"].values():
        page = await mail.client.get(path)
        assert page.status == 200
        assert "This link was already used" in await page.text()
        assert 'method="post"' not in await page.text()
    head = await mail.store.head()
    page = await mail.client.get(links["alice"]["Reject"])
    # The page has no form any more; a POST made with the old page's token is refused as used.
    token = mail.signer.csrf(links["alice"]["Reject"].rsplit("/", 1)[1])
    again = await mail.client.post(links["alice"]["Reject"], data={"csrf_token": token})
    assert again.status == 409
    assert "This link was already used" in await again.text()
    assert await mail.store.head() == head
    page.close()


async def test_another_members_link_after_the_decision_says_already_decided(mail: EmailApp) -> None:
    _, links = await _mailed(mail, "alice", "bob")
    assert (await mail.confirm(links["alice"]["Reject"])).status == 200
    page = await mail.client.get(links["bob"]["Approve"])
    assert page.status == 200
    text = await page.text()
    assert "Already decided: rejected by alice at " in text
    assert 'method="post"' not in text
    token = mail.signer.csrf(links["bob"]["Approve"].rsplit("/", 1)[1])
    late = await mail.client.post(links["bob"]["Approve"], data={"csrf_token": token})
    assert late.status == 409 and "rejected by alice" in await late.text()


async def test_a_tampered_link_is_a_404_page(mail: EmailApp) -> None:
    _, links = await _mailed(mail, "alice")
    path = links["alice"]["Approve"]
    tampered = path[:-2] + ("AA" if not path.endswith("AA") else "BB")
    head = await mail.store.head()
    for method in ("GET", "POST"):
        page = await mail.client.request(method, tampered, data={"csrf_token": "x"})
        assert page.status == 404
        assert page.content_type == "text/html"
        assert "not valid" in await page.text()
    assert await mail.store.head() == head


async def test_an_expired_link_is_a_410_page(mail: EmailApp) -> None:
    request_id, _ = await _mailed(mail, "alice")
    alice = await mail.teams.identity("email", ALICE)
    assert alice is not None
    past = datetime.now(UTC) - timedelta(minutes=1)
    token = mail.signer.answer_token(
        AnswerLink(
            request_id=request_id,
            address=ALICE,
            user_id=alice.user_id,
            option="Approve",
            expires=int(past.timestamp()),
        )
    )
    page = await mail.client.get(f"/email/answer/{token}")
    assert page.status == 410
    assert "expired" in await page.text()
    refused = await mail.client.post(
        f"/email/answer/{token}", data={"csrf_token": mail.signer.csrf(token)}
    )
    assert refused.status == 410


async def test_two_members_voting_by_email_reach_a_quorum_of_two(mail: EmailApp) -> None:
    request_id, links = await _mailed(mail, "alice", "bob", quorum=2)
    shown = await mail.client.get(links["bob"]["Approve"])
    assert "0 of 2 approvals so far" in await shown.text()
    first = await mail.confirm(links["alice"]["Approve"])
    assert first.status == 200
    assert "1 of 2 approvals" in await first.text()
    (vote,) = await mail.wait_for(request_id, VoteCast)
    assert isinstance(vote, VoteCast) and vote.channel == "email"
    second = await mail.confirm(links["bob"]["Approve"])
    assert second.status == 200
    (decision,) = await mail.wait_for(request_id, ResponseReceived)
    assert isinstance(decision, ResponseReceived) and decision.approved
    assert [v.channel for v in decision.votes] == ["email", "email"]
    # Alice's link is used; her other option says so too.
    page = await mail.client.get(links["alice"]["Reject"])
    assert "This link was already used" in await page.text()


async def test_an_unlinked_address_may_no_longer_answer(mail: EmailApp) -> None:
    request_id, links = await _mailed(mail, "alice")
    alice = await mail.teams.identity("email", ALICE)
    assert alice is not None
    await mail.teams.unlink_identity(alice.actor(), "email", ALICE)
    refused = await mail.confirm(links["alice"]["Approve"])
    assert refused.status == 403
    (refusal,) = await mail.wait_for(request_id, AnswerRefused)
    assert isinstance(refusal, AnswerRefused) and refusal.reason == "not_an_approver"
    assert refusal.channel == "email"
