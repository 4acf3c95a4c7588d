"""The args editor in a real browser: edit the amount, see the diff and the JSON check live,
approve, and find both versions on the page. Screenshots go to ``tests/artifacts/``."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import Server, call, new_operator, sign_in
from playwright.async_api import Browser, expect

pytestmark = pytest.mark.browser

WIRE = {"tool": "wire_transfer", "args": {"amount": 1500000, "to": "ACME"}}
SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "integer", "maximum": 1000000}, "to": {"type": "string"}},
}


async def test_an_approver_edits_the_args_sees_the_diff_and_approves_the_edit(
    browser: Browser, server: Server, artifacts: Path
) -> None:
    operator = await new_operator(server)
    body = {
        "session_id": "deploys",
        "client_id": "ci",
        "message": "Pay ACME?",
        "request_type": "confirmation",
        "action": WIRE,
        "args_schema": SCHEMA,
    }
    created = await call(server, "POST", "/v1/requests", json=body, headers=operator.agent)
    request_id = created["request_id"]
    page = await (await browser.new_context()).new_page()
    await sign_in(page, server, operator)
    await page.locator(f'[data-request-id="{request_id}"]').get_by_role("link").click()

    editor = page.get_by_label("Or edit the args, then approve (JSON)")
    status, diff = page.locator("[data-args-status]"), page.locator("[data-args-diff]")
    await expect(status).to_contain_text("unchanged")
    await expect(diff).to_be_hidden()
    await editor.fill('{"amount": 150000, "to": "ACME"')  # not closed yet
    await expect(status).to_contain_text("Not valid JSON")
    await expect(editor).to_have_attribute("aria-invalid", "true")
    await editor.fill('{"amount": 150000, "to": "ACME"}')
    await expect(status).to_contain_text("1 key changed")
    await expect(diff.locator("li")).to_have_count(1)
    await expect(diff.locator('[data-changed-key="amount"]')).to_have_text(
        "amount: 1500000 → 150000"
    )
    await page.screenshot(path=artifacts / "actions-editor.png", full_page=True)

    await page.get_by_role("button", name="Approve with these args").click()

    await expect(page.get_by_role("status").first).to_have_text(
        "Your answer was recorded; the agent has it."
    )
    asked, approved = page.locator("[data-asked-args]"), page.locator("[data-approved-args]")
    await expect(asked.locator("tr.changed")).to_contain_text("1500000")
    await expect(approved.locator("tr.changed")).to_contain_text("150000")
    await expect(page.get_by_label("Or edit the args, then approve (JSON)")).to_have_count(0)
    await page.screenshot(path=artifacts / "actions-approved.png", full_page=True)
    view = await call(server, "GET", f"/v1/requests/{request_id}", headers=operator.bearer)
    assert view["edited"] is True
    assert view["decided_action"]["args"] == {"amount": 150000, "to": "ACME"}
