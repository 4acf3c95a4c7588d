"""Votes in a real browser: a request that needs two approvals counts them in both approvers'
queues, live, and lists the votes on its page. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import PASSWORD, Operator, Server, call, new_operator, sign_in
from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 2000


async def member(server: Server, owner: Operator, username: str) -> Operator:
    body = {"username": username, "password": PASSWORD, "role": "approver"}
    await call(server, "POST", "/v1/members", json=body, headers=owner.bearer)
    login = {"username": username, "password": PASSWORD}
    return Operator(username, (await call(server, "POST", "/api/auth/login", json=login))["token"])


async def four_eyes(server: Server, owner: Operator) -> str:
    """A request to finance that needs two approvals, asked by the owner's agent; its id."""
    body = {
        "session_id": "deploys",
        "client_id": "ci",
        "message": "Pay invoice 42?",
        "request_type": "confirmation",
        "approvers": ["group:finance"],
        "quorum": 2,
    }
    created = await call(server, "POST", "/v1/requests", json=body, headers=owner.bearer)
    request_id: str = created["request_id"]
    return request_id


async def queue_of(browser: Browser, server: Server, who: Operator) -> Page:
    page = await (await browser.new_context()).new_page()
    await sign_in(page, server, who)
    await expect(page.locator("[data-live-status]")).to_contain_text("Live")
    return page


async def test_a_vote_in_the_console_counts_in_every_approvers_queue_and_is_listed(
    browser: Browser, server: Server, artifacts: Path
) -> None:
    owner = await new_operator(server, "olive")
    bob, carol = await member(server, owner, "bob"), await member(server, owner, "carol")
    group = {"members": ["bob", "carol"]}
    await call(server, "PUT", "/v1/groups/finance", json=group, headers=owner.bearer)
    request_id = await four_eyes(server, owner)

    bobs, carols = await queue_of(browser, server, bob), await queue_of(browser, server, carol)
    for page in (bobs, carols):
        card = page.locator(f'[data-request-id="{request_id}"]')
        await expect(card.locator("[data-approvals]")).to_have_text("0 of 2 approvals")

    # Carol also has the request's page open, on a tab of her own.
    carols_request = await carols.context.new_page()
    await carols_request.goto(f"{server.base}/console/requests/{request_id}")
    await expect(carols_request.locator("[data-approvals]")).to_have_text("0 of 2 approvals")
    await bobs.locator(f'[data-request-id="{request_id}"]').get_by_role("link").click()
    await bobs.get_by_role("button", name="Approve").click()

    await expect(bobs.get_by_role("status")).to_have_text(
        "Your vote is recorded: 1 of 2 approvals."
    )
    votes = bobs.locator("[data-votes] tbody tr")
    await expect(votes).to_have_count(1)
    await expect(votes.first).to_contain_text("bob")
    await expect(votes.first).to_contain_text("Approve")
    await expect(votes.first).to_contain_text("console")
    await expect(bobs.locator("[data-my-vote]")).to_contain_text("You voted “Approve”")
    await bobs.screenshot(path=artifacts / "votes-request.png", full_page=True)
    # Carol's open queue follows the vote without a reload.
    counted = carols.locator(f'[data-request-id="{request_id}"] [data-approvals]')
    await expect(counted).to_have_text("1 of 2 approvals", timeout=LIVE_WITHIN_MS)
    await carols.screenshot(path=artifacts / "votes-queue.png", full_page=True)
    await expect(carols_request.locator("[data-approvals]")).to_have_text(
        "1 of 2 approvals", timeout=LIVE_WITHIN_MS
    )
    await expect(carols_request.locator("[data-votes] tbody tr")).to_contain_text("bob")
    await bobs.get_by_role("link", name="← Queue").click()
    await expect(bobs.locator(f'[data-request-id="{request_id}"] [data-approvals]')).to_have_text(
        "1 of 2 approvals"
    )
