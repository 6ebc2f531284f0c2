"""The customer page (`GET /`) in a real headless Chromium: the contact form and the live chat widget.

Runs against real services (intake-http, router, notifier) on this test's Kafka and Redis. A failing
test leaves a screenshot in test-artifacts/screenshots/<test name>.png.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis

from services.intake.chat import RATE_MAX_MESSAGES
from tests.conftest import API_TOKEN
from tests.support import ServiceProcesses, reply_as_agent, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("browser tests need Debian's chromium at /usr/bin/chromium", allow_module_level=True)
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="browser tests need the playwright package (pip install playwright)"
)
expect = playwright_api.expect

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
TICKET_ID = re.compile(r"^[A-Z]{2,5}-\d+$")
UI_TIMEOUT_MS = 30_000
# intake-http restarts in a few seconds; the widget's backoff may add up to ~15 s more before it retries.
RECONNECT_TIMEOUT_MS = 60_000
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

expect.set_options(timeout=UI_TIMEOUT_MS)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[object]:
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
def stack(services: ServiceProcesses) -> str:
    services.start("router")
    services.start("notifier")
    return services.start_http()


async def open_page(browser, base_url: str, viewport: dict[str, int] = DESKTOP):
    """A fresh browser profile (empty localStorage) showing the customer page."""
    context = await browser.new_context(viewport=viewport)
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(base_url)
    return page


@pytest.fixture
async def page(browser, stack: str, request: pytest.FixtureRequest) -> AsyncIterator[object]:
    failures_before = request.session.testsfailed
    page = await open_page(browser, stack)
    yield page
    # The call phase is reported before fixtures are torn down, so a failure is already counted here.
    if request.session.testsfailed > failures_before:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(playwright_api.Error):  # a crashed page must not hide the real failure
            await page.screenshot(path=SCREENSHOTS / f"{request.node.name}.png", full_page=True)
    await page.context.close()


async def ticket_when(base_url: str, ticket_id: str, ready) -> dict:
    """The read model's ticket once `ready(ticket)` holds, polled off the event loop."""
    return await asyncio.to_thread(wait_for_ticket, base_url, ticket_id, API_TOKEN, ready)


async def agent_reply(services: ServiceProcesses, ticket_id: str, text: str) -> None:
    await asyncio.to_thread(reply_as_agent, services.settings, ticket_id, text)


async def fill_contact_form(page, *, email: str = "ana@example.com") -> None:
    await page.locator("#name").fill("Ana Lima")
    await page.locator("#email").fill(email)
    await page.locator("#phone").fill("+351 912 345 678")
    await page.locator("#subject").fill("Order 1042 is late")
    await page.locator("#message").fill("It was due on Monday.\nCan you check?")


async def shown_ticket_number(page) -> str:
    result = page.locator("#contact-ticket")
    await expect(result).to_have_text(re.compile(r"^Your ticket number is [A-Z]{2,5}-\d+\.$"))
    return (await result.locator("strong").text_content()).strip()


async def start_chat(page, *, name: str = "", email: str = "") -> str:
    await page.locator("#chat-name").fill(name)
    await page.locator("#chat-email").fill(email)
    await page.get_by_role("button", name="Start chat").click()
    return await shown_chat_ticket(page)


async def shown_chat_ticket(page) -> str:
    ticket = page.locator("#chat-ticket-id")
    await expect(ticket).to_have_text(TICKET_ID)
    await expect(page.locator("#chat-status")).to_have_text(re.compile("^Connected"))
    return (await ticket.text_content()).strip()


async def send_chat(page, text: str) -> None:
    """Types a message and presses Enter; returns once the server confirmed it (the box empties)."""
    await page.locator("#chat-text").fill(text)
    await page.locator("#chat-text").press("Enter")
    await expect(page.locator("#chat-text")).to_have_value("")


def conversation(page):
    return page.locator("#chat-log .message-text")


async def test_a_submitted_form_shows_its_ticket_number(page, stack):
    posted = []
    page.on("request", lambda request: posted.append(request) if request.method == "POST" else None)
    await fill_contact_form(page)
    await page.get_by_role("button", name="Send message").click()

    ticket_id = await shown_ticket_number(page)
    assert TICKET_ID.match(ticket_id)
    assert len(posted) == 1
    assert uuid.UUID(posted[0].headers["idempotency-key"]).version == 4
    payload = json.loads(posted[0].post_data)
    assert payload.pop("form_stamp"), "the page sends its render stamp back"
    # The browser's time zone goes along (dates to the customer are in it); no language: none was picked.
    assert payload.pop("timezone")
    assert payload == {
        "name": "Ana Lima",
        "email": "ana@example.com",
        "phone": "+351 912 345 678",
        "subject": "Order 1042 is late",
        "message": "It was due on Monday.\nCan you check?",
    }
    ticket = await ticket_when(stack, ticket_id, lambda t: t["messages"])
    assert ticket["channel"] == "form" and ticket["subject"] == "Order 1042 is late"
    await expect(page.locator("#contact-form")).to_be_hidden()


async def test_a_retry_after_a_lost_response_reuses_the_idempotency_key(page, stack):
    keys = []

    async def lose_the_first_response(route):
        keys.append(route.request.headers["idempotency-key"])
        if len(keys) == 1:
            await route.fetch()  # the server makes the ticket, but the page never hears back
            await route.abort("connectionreset")
        else:
            await route.continue_()

    await page.route("**/v1/forms/contact", lose_the_first_response)
    await fill_contact_form(page)
    await page.get_by_role("button", name="Send message").click()
    await expect(page.locator("#contact-alert")).to_contain_text("could not reach the server")
    await expect(page.locator("#subject")).to_have_value("Order 1042 is late")

    await page.get_by_role("button", name="Send message").click()
    ticket_id = await shown_ticket_number(page)
    assert len(keys) == 2 and keys[0] == keys[1]
    ticket = await ticket_when(stack, ticket_id, lambda t: t["messages"])
    assert len(ticket["messages"]) == 1


async def test_an_invalid_email_is_caught_before_sending(page):
    posted = []
    page.on("request", lambda request: posted.append(request) if request.method == "POST" else None)
    await fill_contact_form(page, email="ana@example")
    await page.locator("#subject").fill("   ")
    await page.get_by_role("button", name="Send message").click()

    email = page.locator("#email")
    await expect(page.locator("#email-error")).to_have_text(
        "Enter an email address that can receive mail, like name@example.com."
    )
    await expect(email).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#subject-error")).to_have_text("This field is required.")
    await expect(email).to_be_focused()
    assert posted == []

    await email.fill("ana@example.com")
    await expect(page.locator("#email-error")).to_be_empty()
    await expect(email).not_to_have_attribute("aria-invalid", "true")


async def test_server_side_field_errors_show_next_to_their_field(page):
    # The page accepts any address with a dot in its domain; the server refuses reserved domains.
    await fill_contact_form(page, email="ana@example.test")
    async with page.expect_response("**/v1/forms/contact") as response:
        await page.get_by_role("button", name="Send message").click()
    assert (await response.value).status == 422

    await expect(page.locator("#email-error")).to_have_text(
        "Enter an email address that can receive mail, like name@example.com."
    )
    await expect(page.locator("#email")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#contact-alert")).to_have_text("Please correct the highlighted fields.")
    await expect(page.locator("#name-error")).to_be_empty()
    await expect(page.locator("#message")).to_have_value("It was due on Monday.\nCan you check?")


async def test_chat_shows_agent_replies_live_and_resumes_after_a_reload(page, stack, services):
    ticket_id = await start_chat(page, name="Ana", email="ana@example.com")
    await send_chat(page, "Hello, my order is late")
    await expect(page.locator("#chat-log .from-customer .message-text")).to_have_text(["Hello, my order is late"])

    await ticket_when(stack, ticket_id, lambda t: t["assignee"] is not None)
    await agent_reply(services, ticket_id, "Sorry! It ships today.")
    await expect(page.locator("#chat-log .from-agent .message-text")).to_have_text(["Sorry! It ships today."])
    await expect(page.locator("#chat-announcer")).to_have_text("Support agent: Sorry! It ships today.")

    # The replay on reload comes from the read model, so wait until it holds the reply too.
    await ticket_when(stack, ticket_id, lambda t: len(t["messages"]) == 2)
    await page.reload()
    assert await shown_chat_ticket(page) == ticket_id
    await expect(conversation(page)).to_have_text(["Hello, my order is late", "Sorry! It ships today."])
    await expect(page.locator("#chat-announcer")).to_be_empty()  # history already seen is not read out again

    await send_chat(page, "Great, thanks")
    await expect(conversation(page)).to_have_text(
        ["Hello, my order is late", "Sorry! It ships today.", "Great, thanks"]
    )
    ticket = await ticket_when(stack, ticket_id, lambda t: len(t["messages"]) == 3)
    assert [m["author"] for m in ticket["messages"]] == ["customer", "agent", "customer"]


async def test_chat_reconnects_by_itself_after_the_server_restarts(page, stack, services):
    ticket_id = await start_chat(page)
    await send_chat(page, "Are you there?")
    await ticket_when(stack, ticket_id, lambda t: t["assignee"] is not None)

    intake = services.running.pop("intake-http")
    intake.terminate()
    await asyncio.to_thread(intake.wait, 20)
    await expect(page.locator("#chat-status")).to_contain_text("Reconnecting")
    await asyncio.to_thread(services.start_http)

    await expect(page.locator("#chat-status")).to_have_text(re.compile("^Connected"), timeout=RECONNECT_TIMEOUT_MS)
    await expect(page.locator("#chat-ticket-id")).to_have_text(ticket_id)
    await agent_reply(services, ticket_id, "Yes, still here.")
    await expect(conversation(page)).to_have_text(["Are you there?", "Yes, still here."])


async def test_chat_keeps_its_session_while_a_lost_redis_is_replayed(page, stack, services):
    ticket_id = await start_chat(page)
    await send_chat(page, "Are you there?")
    await ticket_when(stack, ticket_id, lambda t: len(t["messages"]) == 1)

    redis.Redis.from_url(services.settings.redis_url).flushdb()
    await page.reload()
    # Told to come back, not that the chat ended: the session is in the log, replay restores it.
    await expect(page.locator("#chat-status")).to_contain_text("briefly unavailable")
    replayed = await asyncio.to_thread(switchboard_cli, services.settings, "replay")
    assert replayed.returncode == 0, replayed.stderr

    await expect(page.locator("#chat-status")).to_have_text(re.compile("^Connected"), timeout=RECONNECT_TIMEOUT_MS)
    await expect(page.locator("#chat-ticket-id")).to_have_text(ticket_id)
    await expect(conversation(page)).to_have_text(["Are you there?"])


async def test_chat_shows_the_rate_limit_and_recovers(page):
    await start_chat(page)
    # The limit counts per fixed window, so a burst may straddle two windows: keep going until it bites.
    for number in range(1, 2 * RATE_MAX_MESSAGES + 2):
        await page.locator("#chat-text").fill(f"message {number}")
        await page.locator("#chat-text").press("Enter")
        refusal = await page.wait_for_function(
            """() => {
                const status = document.getElementById("chat-status").textContent;
                if (status.includes("too quickly")) return status;
                return document.getElementById("chat-text").value === "" && "sent";
            }"""
        )
        if await refusal.json_value() != "sent":
            break
    assert "You are sending messages too quickly" in await refusal.json_value()
    await expect(page.locator("#chat-text")).to_have_value(f"message {number}")  # kept, to send again
    await expect(page.locator("#chat-status")).to_have_text(re.compile("^Connected"), timeout=RECONNECT_TIMEOUT_MS)


@pytest.mark.parametrize(("size_name", "viewport"), [("phone", PHONE), ("desktop", DESKTOP)], ids=["phone", "desktop"])
async def test_the_page_fits_phone_and_desktop_screens(browser, stack, size_name, viewport):
    page = await open_page(browser, stack, viewport)
    try:
        await page.get_by_role("button", name="Send message").click()  # shows the inline errors
        await start_chat(page, name="Ana")
        await send_chat(page, "Hello! Where is my parcel?")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / f"customer-page-{size_name}.png", full_page=True)

        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        form_box = await page.locator("#contact-form").bounding_box()
        chat_box = await page.locator("#chat-heading").bounding_box()
        side_by_side = chat_box["x"] > form_box["x"] + form_box["width"]
        assert side_by_side == (viewport["width"] > 700)
    finally:
        await page.context.close()


async def test_pasted_text_over_the_limit_is_kept_and_flagged_not_cut(page):
    posted = []
    page.on("request", lambda request: posted.append(request) if request.method == "POST" else None)
    await fill_contact_form(page)
    too_long = "x" * 20_001
    await page.locator("#message").fill(too_long)
    await expect(page.locator("#message")).to_have_value(too_long)
    await page.get_by_role("button", name="Send message").click()
    await expect(page.locator("#message-error")).to_have_text(
        "Please keep this under 20,000 characters (it has 20,001)."
    )
    assert posted == []

    await start_chat(page, name="Ana")
    await page.locator("#chat-text").fill("y" * 4_001)
    await page.locator("#chat-text").press("Enter")
    await expect(page.locator("#chat-status")).to_contain_text("too long to send")
    await expect(page.locator("#chat-text")).to_have_value("y" * 4_001)
    await send_chat(page, "shorter")


async def test_a_person_filling_the_form_quickly_still_gets_a_ticket_not_the_quarantine(page, stack):
    """The honeypot stays out of sight and out of the tab order, and the page waits out the minimum fill
    time (3 s in the example config) however fast the form was filled in (issue #16)."""
    trap = page.locator("#website")
    box = await trap.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 0, "off-screen"
    assert await trap.get_attribute("tabindex") == "-1"
    await expect(page.locator(".field-trap")).to_have_attribute("aria-hidden", "true")
    await page.locator("#name").focus()
    for _ in range(6):
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.id") != "website"

    posted = []
    page.on("request", lambda request: posted.append(request) if request.method == "POST" else None)
    await fill_contact_form(page, email="quick@example.com")
    await page.get_by_role("button", name="Send message").click()
    ticket_id = await shown_ticket_number(page)
    assert "website" not in json.loads(posted[0].post_data)
    ticket = await ticket_when(stack, ticket_id, lambda t: t["messages"])
    assert ticket["subject"] == "Order 1042 is late"
    kept = await asyncio.to_thread(
        lambda: httpx.get(f"{stack}/v1/quarantine", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=10)
    )
    assert kept.json()["messages"] == []
