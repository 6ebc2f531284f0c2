"""The customer's side of CSAT in a real headless Chromium: the emailed rating page and the chat widget's prompt.

Runs against a real intake-http on this test's Kafka and Redis; a rating is done when its `RateTicket` is
on the commands topic. A failing test leaves a screenshot in test-artifacts/screenshots/<test name>.png.
"""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from services.intake.csat import CSAT_PATH
from shared.conversations import chat_channel
from shared.csat import CsatSubject, CsatTokens
from shared.events import RateTicket
from shared.ids import derived_id
from shared.redis_client import connect_redis
from shared.settings import Settings
from shared.topics import COMMANDS, Topics
from tests.e2e.test_customer_page import PHONE, SCREENSHOTS, browser, expect, open_page, page, start_chat
from tests.support import ServiceProcesses, read_topic, topic_size

pytestmark = pytest.mark.e2e
__all__ = ["browser", "page"]  # fixtures shared with the customer page's tests

CSAT_SECRET = "csat-secret-for-browser-tests"
SUBJECT = CsatSubject("SB-1042", 1)


@pytest.fixture
def stack(services: ServiceProcesses) -> str:
    return services.start_http(SWITCHBOARD_CSAT_SECRET=CSAT_SECRET)


def rating_link(base_url: str) -> str:
    return base_url + CSAT_PATH.format(token=CsatTokens(CSAT_SECRET).issue(SUBJECT))


def commands_topic(settings: Settings) -> str:
    return Topics(settings.topic_prefix).name(COMMANDS)


async def published_ratings(settings: Settings, count: int) -> list[RateTicket]:
    records = await read_topic(settings.kafka_bootstrap, commands_topic(settings), at_least=count)
    assert len(records) == count, f"expected {count} commands, found {len(records)}"
    return [RateTicket.model_validate_json(record.value) for record in records]


async def test_a_customer_rates_on_the_page_of_the_emailed_link(browser, stack, services):
    page = await open_page(browser, stack, PHONE)
    try:
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        await page.goto(rating_link(stack))
        await expect(page.get_by_role("heading", name="How did we do?")).to_be_visible()
        await expect(page.locator(".ticket-id")).to_have_text("SB-1042")

        await page.get_by_role("radio", name="4 Good").check()
        await page.get_by_label("Comment").fill("Quick and kind, thank you!")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "csat-page-phone.png", full_page=True)
        await page.get_by_role("button", name="Send rating").click()

        await expect(page.get_by_role("heading", name="Thank you for your rating!")).to_be_visible()
        # Phone-sized, styled by the app's own stylesheet under the page's CSP, nothing from elsewhere.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert all(url.startswith(stack) for url in requested), requested
        await page.screenshot(path=SCREENSHOTS / "csat-thanks-phone.png", full_page=True)
    finally:
        await page.context.close()

    [rated] = await published_ratings(services.settings, 1)
    assert (rated.ticket_id, rated.resolution, rated.agent_id) == ("SB-1042", 1, "customer")
    assert (rated.score, rated.comment) == (4, "Quick and kind, thank you!")
    assert rated.event_id == derived_id("csat", "SB-1042", 1)


async def test_sending_without_a_score_shows_the_error_and_keeps_the_comment(page, stack, services):
    await page.goto(rating_link(stack))
    await page.get_by_label("Comment").fill("Forgot to choose")
    async with page.expect_response(lambda response: response.request.method == "POST") as response:
        await page.get_by_role("button", name="Send rating").click()
    assert (await response.value).status == 422

    await expect(page.get_by_role("alert")).to_have_text("Please correct the highlighted fields.")
    await expect(page.locator("#score-error")).to_have_text("Please choose a score from 1 (poor) to 5 (excellent).")
    await expect(page.get_by_label("Comment")).to_have_value("Forgot to choose")
    assert await topic_size(services.settings.kafka_bootstrap, commands_topic(services.settings)) == 0

    await page.get_by_role("radio", name="2 Poor").check()
    await page.get_by_role("button", name="Send rating").click()
    await expect(page.get_by_role("heading", name="Thank you for your rating!")).to_be_visible()
    [rated] = await published_ratings(services.settings, 1)
    assert (rated.score, rated.comment) == (2, "Forgot to choose")


async def test_a_forged_link_says_it_is_not_valid(page, stack):
    response = await page.goto(f"{stack}/v1/csat/forged-token")
    assert response.status == 404
    await expect(page.get_by_role("heading")).to_have_text("This rating link is not valid")


async def test_the_chat_widget_shows_the_rating_prompt_and_sends_the_rating(page, services):
    ticket_id = await start_chat(page, name="Ana")
    request = {"type": "csat", "ticket_id": ticket_id, "resolution": 1, "scores": [1, 2, 3, 4, 5]}
    redis = connect_redis(services.settings.redis_url)
    try:
        # What the notifier does after the ticket was solved; the session subscribes just after it
        # answered the hello, so publish until it hears.
        while not await redis.publish(chat_channel(ticket_id), json.dumps(request)):
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()

    prompt = page.get_by_role("group", name="How did we do?")
    await expect(prompt.get_by_role("button")).to_have_count(5)
    # Not answered yet, it survives a reload with the session.
    await page.reload()
    await expect(page.locator("#chat-status")).to_have_text(re.compile("^Connected"))
    await expect(prompt.get_by_role("button")).to_have_count(5)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.locator("#chat").screenshot(path=SCREENSHOTS / "csat-chat-prompt.png")
    await prompt.get_by_role("button", name="4 out of 5").click()
    await expect(page.locator(".csat-prompt")).to_have_text("Thanks for your rating!")
    await expect(page.locator("#chat-announcer")).to_have_text("Thanks for your rating!")
    await page.reload()
    await expect(page.locator("#chat-status")).to_have_text(re.compile("^Connected"))
    await expect(page.locator(".csat-prompt")).to_have_count(0)

    [rated] = await published_ratings(services.settings, 1)
    assert (rated.ticket_id, rated.resolution, rated.score, rated.agent_id) == (ticket_id, 1, 4, "customer")
