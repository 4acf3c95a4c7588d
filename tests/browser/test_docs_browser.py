"""``/docs`` in Chromium: every route of ``/openapi.json`` shown, nothing fetched elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import Server, call
from playwright.async_api import Browser, Request, expect

pytestmark = pytest.mark.browser


async def test_docs_render_every_route_and_fetch_only_from_the_server(
    browser: Browser, server: Server, artifacts: Path
) -> None:
    document = await call(server, "GET", "/openapi.json")
    page = await browser.new_page()
    fetched: list[str] = []

    def record(request: Request) -> None:
        fetched.append(request.url)

    page.on("request", record)
    await page.goto(server.base + "/docs", wait_until="networkidle")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Loopgate API")
    for path, methods in document["paths"].items():
        for method in methods:
            heading = page.locator(f"#{methods[method]['operationId']} h3")
            await expect(heading).to_contain_text(path)
            await expect(heading).to_contain_text(method, ignore_case=True)
    await expect(page.locator("#schema-PublicRequest")).to_be_visible()
    await page.screenshot(path=str(artifacts / "docs.png"), full_page=True)
    outside = [url for url in fetched if not url.startswith(server.base + "/")]
    assert fetched and outside == []
