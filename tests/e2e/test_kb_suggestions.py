"""Help-centre suggestions on the customer page in a real headless Chromium: typing the subject shows the
matching articles (a debounced GET /v1/kb/search), before the form is sent; the help centre is linked.

Runs against a real intake-http on this test's Kafka and Redis, its knowledge base the 20-article corpus.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from shared.settings import EXAMPLE_CONFIG
from tests.e2e.test_customer_page import CHROMIUM, CHROMIUM_ARGS, PHONE, UI_TIMEOUT_MS, expect, playwright_api
from tests.support import ServiceProcesses

pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "kb"


@pytest.fixture
def help_desk(services: ServiceProcesses, tmp_path: Path) -> str:
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["knowledge_base"] = {"path": str(shutil.copytree(CORPUS, tmp_path / "kb"))}
    path = tmp_path / "kb-config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return services.start_http(SWITCHBOARD_CONFIG=str(path))


@pytest.fixture
async def page(help_desk: str) -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = await browser.new_context(viewport=PHONE)
        context.set_default_timeout(UI_TIMEOUT_MS)
        page = await context.new_page()
        await page.goto(help_desk)
        yield page
        await browser.close()


async def test_typing_the_subject_shows_matching_articles_before_sending(page):
    suggestions = page.locator("#kb-suggestions")
    await expect(suggestions).to_be_hidden()
    await page.locator("#subject").press_sequentially("I forgot my password", delay=20)
    first = suggestions.get_by_role("link").first
    await expect(first).to_have_text("Reset your password")
    await expect(first).to_have_attribute("href", "/kb/reset-password")
    assert await suggestions.get_by_role("link").count() <= 3

    await page.locator("#subject").fill("")
    await page.locator("#subject").press_sequentially("怎么申请退款", delay=20)
    await expect(suggestions.get_by_role("link").first).to_have_text("退款说明")

    # Nothing matches: the box goes away rather than show stale articles.
    await page.locator("#subject").fill("")
    await page.locator("#subject").press_sequentially("xylophone quartet", delay=20)
    await expect(suggestions).to_be_hidden()


async def test_the_customer_page_links_the_help_centre_and_its_articles_open(page):
    await page.locator("#help-centre-link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Help centre")
    await page.get_by_role("searchbox").fill("下载发票")
    await page.get_by_role("button", name="Search").click()
    await page.locator(".kb-results").get_by_role("link").first.click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("下载发票")


async def test_the_help_centre_follows_the_language_picked_on_the_customer_page(page):
    """Issue 15: a customer who picks 中文 on an English browser gets the help centre's own texts in Chinese."""
    await page.get_by_label("Language").select_option("zh-Hans")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    await page.locator("#subject").press_sequentially("I forgot my password", delay=20)
    first = page.locator("#kb-suggestions").get_by_role("link").first
    await expect(first).to_have_attribute("href", "/kb/reset-password?lang=zh-Hans")
    await page.locator("#help-centre-link").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("帮助中心")
    await expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
    await page.get_by_role("searchbox", name="搜索帮助中心").fill("refund")
    await page.get_by_role("button", name="搜索").click()
    await page.locator(".kb-results").get_by_role("link").first.click()
    # The article as written (English), the help centre's own texts still Chinese.
    await expect(page.get_by_role("heading", level=1)).to_have_text("How refunds work")
    await expect(page.get_by_role("link", name="全部文章")).to_be_visible()
