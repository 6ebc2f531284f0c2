"""The customer page in the browser's language, with a switch (issue 15), in a real headless Chromium.

Screenshots of the page in each language go to test-artifacts/screenshots/ (customer-page-<locale>.png),
to be looked at: Chinese must show as CJK glyphs, not boxes.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import API_TOKEN
from tests.e2e.test_customer_page import (
    DESKTOP,
    SCREENSHOTS,
    UI_TIMEOUT_MS,
    agent_reply,
    browser,  # noqa: F401 (fixture)
    expect,
    send_chat,
    stack,  # noqa: F401 (fixture)
)
from tests.support import wait_for_ticket

pytestmark = pytest.mark.e2e


async def open_in(browser, base_url: str, locale: str):  # noqa: F811 (the fixture imported above)
    """A fresh profile whose browser asks for `locale` (Accept-Language and navigator.languages)."""
    context = await browser.new_context(viewport=DESKTOP, locale=locale)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(base_url)
    return page


async def test_a_browser_asking_for_chinese_gets_the_page_in_chinese_and_can_switch_to_english(
    browser,  # noqa: F811 (the fixture imported above)
    stack,  # noqa: F811
):
    page = await open_in(browser, stack, "zh-CN")
    try:
        await expect(page.get_by_role("heading", name="联系客服")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "zh-Hans")
        await expect(page.get_by_label("语言")).to_have_value("zh-Hans")
        await expect(page.locator("#message-count")).to_have_text("0 / 20,000 个字符")
        await page.get_by_role("button", name="发送消息").click()
        await expect(page.locator("#name-error")).to_have_text("此项为必填项。")
        await expect(page.get_by_role("button", name="开始交谈")).to_be_visible()
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "customer-page-zh-Hans.png", full_page=True)

        await page.get_by_label("语言").select_option("en")
        await expect(page.get_by_role("heading", name="Contact support")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "en")
        # What was shown in Chinese follows the switch: errors, counters, the chat.
        await expect(page.locator("#name-error")).to_have_text("This field is required.")
        await expect(page.locator("#message-count")).to_have_text("0 / 20,000 characters")
        await expect(page.get_by_role("button", name="Start chat")).to_be_visible()
        await page.screenshot(path=SCREENSHOTS / "customer-page-en.png", full_page=True)

        # The pick is the customer's: kept on reload, and it wins over the browser and the message's language.
        await page.reload()
        await expect(page.get_by_role("heading", name="Contact support")).to_be_visible()
        await page.locator("#name").fill("李雷")
        await page.locator("#email").fill("lilei@example.com")
        await page.locator("#subject").fill("订单")
        await page.locator("#message").fill("你好，我的订单还没有到。")
        async with page.expect_response("**/v1/forms/contact") as response:
            await page.get_by_role("button", name="Send message").click()
        answer = await response.value
        assert answer.status == 202
        ticket_id = (await answer.json())["ticket_id"]
        await expect(page.locator("#contact-ticket")).to_have_text(f"Your ticket number is {ticket_id}.")
        ticket = await asyncio.to_thread(wait_for_ticket, stack, ticket_id, API_TOKEN, lambda ticket: True)
        assert (ticket["customer_language"], ticket["customer_language_from"]) == ("en", "picked")
        assert ticket["customer_timezone"]  # the browser's own zone
    finally:
        await page.context.close()


async def test_the_chat_speaks_chinese_to_a_chinese_browser_and_the_ticket_records_it(
    browser,  # noqa: F811 (the fixture imported above)
    stack,  # noqa: F811
    services,
):
    page = await open_in(browser, stack, "zh-CN")
    try:
        await page.get_by_role("button", name="开始交谈").click()
        await expect(page.locator("#chat-status")).to_have_text("已连接。客服人员会在这里答复您。")
        ticket_id = (await page.locator("#chat-ticket-id").text_content()).strip()
        await expect(page.locator("#chat-ticket")).to_have_text(f"工单 {ticket_id}")
        await send_chat(page, "你好，我的订单还没到")
        # No pick on the page: the browser's Accept-Language (on the chat's WebSocket) is the hint.
        ticket = await asyncio.to_thread(
            wait_for_ticket, stack, ticket_id, API_TOKEN, lambda ticket: ticket["assignee"] is not None
        )
        assert (ticket["customer_language"], ticket["customer_language_from"]) == ("zh-Hans", "hint")
        await agent_reply(services, ticket_id, "您好，今天发货。")
        await expect(page.locator("#chat-log .from-agent .message-meta span")).to_have_text("客服人员")
        await expect(page.locator("#chat-announcer")).to_have_text("客服人员：您好，今天发货。")
        await page.screenshot(path=SCREENSHOTS / "customer-chat-zh-Hans.png", full_page=True)
    finally:
        await page.context.close()
