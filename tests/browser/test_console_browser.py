"""The console in a real browser: sign in, a live queue, answering by click and by keyboard,
a phone-sized screen, local times. Screenshots of the queue go to ``tests/artifacts/``."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from browser_helpers import Operator, Server, ask, call, new_operator, sign_in
from playwright.async_api import Browser, Page, expect

pytestmark = pytest.mark.browser

LIVE_WITHIN_MS = 2000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 812}


async def signed_in_page(
    browser: Browser, server: Server, operator: Operator, **context: Any
) -> Page:
    page = await (await browser.new_context(**context)).new_page()
    await sign_in(page, server, operator)
    return page


async def long_poll(server: Server, operator: Operator, request_id: str) -> dict[str, Any]:
    """The agent, waiting for its answer."""
    result: dict[str, Any] = await call(
        server,
        "GET",
        "/hitl/poll",
        params={"request_id": request_id, "wait": "30"},
        headers=operator.bearer,
    )
    return result


async def answer_elsewhere(
    server: Server, operator: Operator, request_id: str, **answer: str
) -> None:
    """An answer through the API, as from another channel than this browser."""
    path = f"/v1/requests/{request_id}/response"
    await call(server, "POST", path, json=answer, headers=operator.bearer)


def card(page: Page, request_id: str) -> Any:
    return page.locator(f'[data-request-id="{request_id}"]')


async def test_a_request_created_over_rest_appears_in_the_open_queue_without_a_reload(
    browser: Browser, server: Server
) -> None:
    operator = await new_operator(server)
    page = await signed_in_page(browser, server, operator)
    await expect(page.get_by_text("Nothing is waiting for you")).to_be_visible()
    await expect(page.locator("[data-live-status]")).to_contain_text("Live")
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    request_id = await ask(server, operator, "Deploy v2.1 to production?")
    await expect(card(page, request_id)).to_be_visible(timeout=LIVE_WITHIN_MS)
    await expect(card(page, request_id)).to_contain_text("Deploy v2.1 to production?")
    await expect(page.get_by_text("Nothing is waiting for you")).to_be_hidden()
    await expect(page.locator("[data-queue-count]")).to_have_text("1")
    assert await page.evaluate("window.loadedOnce") is True


async def test_a_request_decided_elsewhere_leaves_the_open_queue(
    browser: Browser, server: Server
) -> None:
    operator = await new_operator(server)
    first = await ask(server, operator, "First question?")
    second = await ask(server, operator, "Second question?")
    page = await signed_in_page(browser, server, operator)
    await expect(card(page, first)).to_be_visible()
    await expect(page.locator("[data-live-status]")).to_contain_text("Live")
    await answer_elsewhere(server, operator, first, text="handled on Telegram")
    await expect(card(page, first)).to_have_count(0, timeout=LIVE_WITHIN_MS)
    await expect(card(page, second)).to_be_visible()


async def test_clicking_an_option_returns_the_agents_long_poll_with_that_option(
    browser: Browser, server: Server
) -> None:
    operator = await new_operator(server)
    request_id = await ask(
        server, operator, "Deploy v2.1.0?", options=["🚀 Deploy", "⏸️ Hold"], metadata={"v": 2}
    )
    waiting = asyncio.create_task(long_poll(server, operator, request_id))
    page = await signed_in_page(browser, server, operator)
    await card(page, request_id).get_by_role("link").click()
    await expect(page.get_by_role("button", name="🚀 Deploy")).to_be_visible()

    await page.get_by_role("button", name="🚀 Deploy").click()
    result = await asyncio.wait_for(waiting, 5)
    assert (result["status"], result["response"], result["approved"]) == (
        "completed",
        "🚀 Deploy",
        True,
    )
    await expect(page.get_by_role("status")).to_contain_text("Your answer was recorded")
    await expect(page.get_by_role("heading", name="Approved")).to_be_visible()


async def test_an_open_request_page_shows_the_outcome_when_decided_elsewhere(
    browser: Browser, server: Server
) -> None:
    operator = await new_operator(server)
    request_id = await ask(server, operator, "Scale the cluster down?", options=["Yes", "No"])
    page = await signed_in_page(browser, server, operator)
    await page.goto(f"{server.base}/console/requests/{request_id}")
    await expect(page.get_by_role("button", name="Yes")).to_be_visible()
    await answer_elsewhere(server, operator, request_id, option="No")
    await expect(page.get_by_role("heading", name="Rejected")).to_be_visible(timeout=LIVE_WITHIN_MS)
    await expect(page.get_by_role("status")).to_contain_text("decided while you were looking")
    await expect(page.get_by_role("button", name="Yes")).to_have_count(0)


async def test_the_console_works_from_the_keyboard(browser: Browser, server: Server) -> None:
    operator = await new_operator(server)
    request_id = await ask(server, operator, "Rotate the keys?", options=["Approve", "Reject"])
    waiting = asyncio.create_task(long_poll(server, operator, request_id))
    page = await signed_in_page(browser, server, operator)
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    for _ in range(3):  # through the queue's heading and live status to the card's link
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement.classList.contains('card-link')"):
            break
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(f"{server.base}/console/requests/{request_id}")
    reject = page.get_by_role("button", name="Reject")
    await reject.focus()
    outline = await reject.evaluate("el => getComputedStyle(el).outlineStyle")
    assert outline != "none"  # focus is visible
    await page.keyboard.press("Enter")
    assert (await asyncio.wait_for(waiting, 5))["response"] == "Reject"


async def test_at_phone_width_the_answer_buttons_fit_without_horizontal_scrolling(
    browser: Browser, server: Server, artifacts: Path
) -> None:
    operator = await new_operator(server)
    await ask(
        server, operator, "Restart the payments cluster in eu-west-1 now?", timeout_seconds=90
    )
    request_id = await ask(
        server,
        operator,
        "Deploy v2.1.0 to production? All 847 tests passed ✅",
        options=["🚀 Deploy", "⏸️ Hold", "🔍 Review First"],
        metadata={"version": "v2.1.0", "commit": "9f3c2e1a" * 8, "environment": "production"},
        timeout_seconds=600,
    )
    phone = await signed_in_page(browser, server, operator, viewport=PHONE, device_scale_factor=2)
    await expect(card(phone, request_id)).to_be_visible()
    await assert_no_horizontal_scroll(phone)
    await phone.screenshot(path=artifacts / "console-queue-phone.png", full_page=True)

    await phone.goto(f"{server.base}/console/requests/{request_id}")
    for label in ("🚀 Deploy", "⏸️ Hold", "🔍 Review First"):
        button = phone.get_by_role("button", name=label)
        await expect(button).to_be_visible()
        box = await button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], label
        assert box["height"] >= 44, label  # a comfortable target for a thumb
    await assert_no_horizontal_scroll(phone)
    await phone.screenshot(path=artifacts / "console-request-phone.png", full_page=True)

    desktop = await signed_in_page(browser, server, operator, viewport=DESKTOP)
    await expect(card(desktop, request_id)).to_be_visible()
    await assert_no_horizontal_scroll(desktop)
    await desktop.screenshot(path=artifacts / "console-queue-desktop.png", full_page=True)


async def assert_no_horizontal_scroll(page: Page) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    viewport = await page.evaluate("window.innerWidth")
    assert width <= viewport, f"the page is {width}px wide in a {viewport}px window"


async def test_times_are_shown_in_the_viewers_time_zone(browser: Browser, server: Server) -> None:
    operator = await new_operator(server)
    request_id = await ask(server, operator, "What time is it?")
    page = await signed_in_page(browser, server, operator, timezone_id="Asia/Tokyo")
    await page.goto(f"{server.base}/console/requests/{request_id}")
    asked = page.locator("tr", has_text="Asked at").locator("time")
    iso = await asked.get_attribute("datetime")
    expected = await page.evaluate(
        """iso => new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short",
        timeZone: "Asia/Tokyo"}).format(new Date(iso))""",
        iso,
    )
    await expect(asked).to_have_text(expected)
    assert "UTC" not in expected


async def test_signing_out_sends_the_browser_back_to_sign_in(
    browser: Browser, server: Server
) -> None:
    operator = await new_operator(server)
    page = await signed_in_page(browser, server, operator)
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("status")).to_have_text("You are signed out.")
    await page.goto(f"{server.base}/console/keys")
    await expect(page).to_have_url(f"{server.base}/console/login?next=%2Fconsole%2Fkeys")
