"""Teams in a real browser: the owner invites from the console, the approver joins through the
link on a phone, links no other account, and answers a request routed to them there.
Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import PASSWORD, Server, ask, call, new_operator, sign_in
from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 2000
PHONE = {"width": 375, "height": 812}


async def assert_fits(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, f"{page.url} is {width}px wide in a {viewport}px window"


async def test_an_invited_approver_joins_on_a_phone_and_answers_what_is_routed_to_them(
    browser: Browser, server: Server, artifacts: Path
) -> None:
    owner = await new_operator(server, "olive")  # the first user: owner of the default workspace

    # The owner invites an approver from the console.
    desk = await (await browser.new_context()).new_page()
    await sign_in(desk, server, owner)
    await desk.get_by_role("link", name="Members").click()
    await desk.get_by_role("link", name="Invite someone").click()
    await expect(desk.get_by_label("Approver")).to_be_checked()
    await desk.get_by_role("button", name="Create invitation").click()
    link = await desk.locator("[data-invitation-url]").input_value()
    assert link.startswith(f"{server.base}/console/join/")

    # The approver opens it on a phone, chooses a name and a password, and is signed in.
    phone = await (
        await browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True)
    ).new_page()
    await phone.goto(link)
    await expect(phone.get_by_text("You are invited as approver")).to_be_visible()
    await assert_fits(phone)
    await phone.screenshot(path=artifacts / "teams-join-phone.png", full_page=True)
    await phone.get_by_label("Choose a username").fill("bob")
    await phone.get_by_label("Choose a password").fill(PASSWORD)
    await phone.get_by_label("The password again").fill(PASSWORD)
    await phone.get_by_role("button", name="Join").click()
    await expect(phone).to_have_url(f"{server.base}/console")
    await expect(phone.get_by_text("bob", exact=True)).to_be_visible()  # signed in as bob
    await expect(phone.get_by_text("Nothing is waiting for you")).to_be_visible()
    await expect(phone.locator("[data-live-status]")).to_contain_text("Live")

    # bob links no other account: his linked accounts stay empty.
    me = await call(server, "GET", "/v1/members", headers=owner.bearer)
    bob = next(m for m in me if m["username"] == "bob")
    assert (bob["role"], bob["identities"]) == ("approver", [])

    # The agent asks bob; the request appears in his queue and he answers it there.
    request_id = await ask(
        server, owner, "Refund order 981?", options=["Approve", "Reject"], approvers=["user:bob"]
    )
    card = phone.locator(f'[data-request-id="{request_id}"]')
    await expect(card).to_be_visible(timeout=LIVE_WITHIN_MS)
    await assert_fits(phone)
    await phone.screenshot(path=artifacts / "teams-queue-phone.png", full_page=True)
    await card.get_by_role("link").click()
    await phone.get_by_role("button", name="Approve").click()
    await expect(phone.get_by_role("status")).to_contain_text("Your answer was recorded")
    await expect(phone.get_by_role("heading", name="Approved")).to_be_visible()
    await assert_fits(phone)

    view = await call(server, "GET", f"/v1/requests/{request_id}", headers=owner.bearer)
    assert view["decided_by"] == {
        "kind": "human",
        "id": bob["user_id"],
        "channel": "console",
        "routed_by": "user:bob",
    }

    # The owner's own queue ("Routed to me") never showed bob's request; "All" lists it, decided.
    await desk.goto(f"{server.base}/console")
    await expect(desk.get_by_role("link", name="All")).to_be_visible()
    await expect(desk.locator(f'[data-request-id="{request_id}"]')).to_have_count(0)


async def test_the_people_pages_fit_a_phone(
    browser: Browser, server: Server, artifacts: Path
) -> None:
    owner = await new_operator(server, "olive")
    await call(
        server,
        "POST",
        "/v1/members",
        json={"username": "a_rather_long_username_indeed", "password": PASSWORD, "role": "auditor"},
        headers=owner.bearer,
    )
    await call(
        server,
        "PUT",
        "/v1/groups/finance",
        json={"members": ["a_rather_long_username_indeed", "olive"]},
        headers=owner.bearer,
    )
    page = await (await browser.new_context(viewport=PHONE, device_scale_factor=2)).new_page()
    await sign_in(page, server, owner)
    for path, name in [
        ("/console/members", "members"),
        ("/console/groups", "groups"),
        ("/console/invitations", "invitations"),
        ("/console/links", "links"),
    ]:
        await page.goto(f"{server.base}{path}")
        await assert_fits(page)
        await page.screenshot(path=artifacts / f"teams-{name}-phone.png", full_page=True)
    await page.get_by_role("button", name="Link a Telegram account").click()
    await expect(page.locator("[data-link-code]")).to_contain_text("/start ")
    await assert_fits(page)
