"""The identity graph through the running stack (real broker, Redis and processes): a form and a Telegram
contact share become one contact; two Telegram users giving one email address are kept apart and agents
see a suggestion with buttons in the ticket's Slack thread, whose "Merge" merges them; the CLI merges and
unmerges contacts."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlencode

import httpx
import pytest
import redis
from slack_sdk.signature import SignatureVerifier

from shared.conversations import conversation_key
from shared.topics import COMMANDS, INBOUND, Topics
from tests.conftest import API_TOKEN, SLACK_SIGNING_SECRET
from tests.integration.lost_redis import assert_same_projections, projections, replay
from tests.integration.test_slack_agents import button
from tests.integration.test_telegram_stack import post_update
from tests.support import ServiceProcesses, eventually, switchboard_cli, wait_for_ticket, wait_until_consumed

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def contact_share(update_id: int, user_id: int, phone: str) -> dict:
    """A Telegram user sends their own contact with the "share my phone number" button."""
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1764000000,
            "chat": {"id": user_id, "type": "private", "first_name": "Ana"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Ana"},
            "contact": {"phone_number": phone.removeprefix("+"), "first_name": "Ana", "user_id": user_id},
        },
    }


def contact(base_url: str, contact_id: str) -> dict:
    response = httpx.get(f"{base_url}/v1/contacts/{contact_id}", headers=AUTH, timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def contact_until(base_url: str, contact_id: str, ready, what: str) -> dict:
    found: dict = {}

    def check() -> bool:
        found.update(contact(base_url, contact_id))
        return ready(found)

    eventually(check, what, timeout=30)
    return found


def test_a_form_then_a_telegram_share_of_its_phone_is_one_contact_with_both_tickets(services: ServiceProcesses):
    services.start("router")
    base_url = services.start_http()
    form = httpx.post(
        f"{base_url}/v1/forms/contact",
        json={
            "name": "Ana",
            "email": "ana@example.com",
            "phone": "+34 600 123 456",
            "subject": "Login",
            "message": "hi",
        },
        timeout=30,
    )
    assert form.status_code == 202, form.text
    form_ticket = wait_for_ticket(base_url, form.json()["ticket_id"], API_TOKEN, lambda t: t["contact"] is not None)

    assert post_update(base_url, contact_share(5001, 4343, "+34600123456")).status_code == 200

    both = contact_until(
        base_url,
        form_ticket["contact"]["id"],
        lambda c: len(c["tickets"]) == 2,
        "the Telegram ticket joins the form's contact",
    )
    assert both["telegram_user_ids"] == ["4343"] and both["emails"] == ["ana@example.com"]
    assert "phone:+34600123456" in both["verified"] and "email:ana@example.com" not in both["verified"]
    telegram_ticket = next(ticket for ticket in both["tickets"] if ticket != form_ticket["id"])
    assert wait_for_ticket(base_url, telegram_ticket, API_TOKEN, lambda t: True)["contact"]["id"] == both["id"]


def telegram_text(update_id: int, user_id: int, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1764000000,
            "chat": {"id": user_id, "type": "private", "first_name": "Cy"},
            "from": {"id": user_id, "is_bot": False, "first_name": "Cy"},
            "text": text,
        },
    }


def ticket_of_chat(settings, chat_id: int) -> str | None:
    """The ticket a Telegram chat continues (intake's conversation index)."""
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        return store.get(conversation_key(f"telegram:chat:{chat_id}"))
    finally:
        store.close()


def press(base_url: str, payload: dict) -> httpx.Response:
    """A button press as Slack posts it: a signed form whose `payload` field is the JSON."""
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(SLACK_SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body),
    }
    return httpx.post(f"{base_url}/v1/slack/events", content=body, headers=headers, timeout=30)


def suggestion_buttons(fake_slack) -> list[dict]:
    for call in fake_slack.calls_to("chat.postMessage"):
        blocks = call.args.get("blocks")
        blocks = json.loads(blocks) if isinstance(blocks, str) else blocks or []
        elements = [element for block in blocks if block["type"] == "actions" for element in block["elements"]]
        if any(element["action_id"] == "sb_merge_contacts" for element in elements):
            return [call.args, elements]
    return []


def test_two_telegram_users_giving_one_email_are_kept_apart_and_a_slack_button_merges_them(
    services: ServiceProcesses, fake_slack
):
    for name in ("router", "notifier"):
        services.start(name)
    base_url = services.start_http()
    tickets = []
    for update_id, user_id in ((6001, 901), (6011, 902)):
        # Each user writes, then gives the same address with /email (claimed: Telegram proves the user only).
        assert post_update(base_url, telegram_text(update_id, user_id, "My order never came")).status_code == 200
        ticket_id = eventually(lambda u=user_id: ticket_of_chat(services.settings, u), "the ticket")
        assert post_update(base_url, telegram_text(update_id + 1, user_id, "/email cy@example.com")).status_code == 200
        tickets.append(
            wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) == 2 and t["contact"])
        )
    first = tickets[0]
    second = wait_for_ticket(
        base_url,
        tickets[1]["id"],
        API_TOKEN,
        lambda t: any(entry["type"] == "contact.merge_suggested" for entry in t["history"]),
    )
    assert second["contact"]["id"] != first["contact"]["id"], "not merged"
    eventually(lambda: suggestion_buttons(fake_slack), "the suggestion is posted in the ticket's thread")
    post, elements = suggestion_buttons(fake_slack)
    assert post["channel"] == "C0SUPPORT" and post.get("thread_ts"), "in the ticket's thread"
    assert "two different Telegram users" in post["text"]
    assert [element["action_id"] for element in elements] == ["sb_merge_contacts", "sb_keep_contacts"]

    [merge] = [element for element in elements if element["action_id"] == "sb_merge_contacts"]
    assert press(base_url, button("sb_merge_contacts", "U0ANA", merge["value"])).status_code == 200

    merged = contact_until(
        base_url, second["contact"]["id"], lambda c: c["id"] == first["contact"]["id"], "the agent's merge"
    )
    assert merged["telegram_user_ids"] == ["901", "902"] and merged["tickets"] == sorted([first["id"], second["id"]])


def test_the_cli_merges_two_contacts_and_unmerges_them(services: ServiceProcesses):
    services.start("router")
    base_url = services.start_http()
    tickets = []
    for email in ("di@example.com", "di.work@example.com"):
        response = httpx.post(
            f"{base_url}/v1/forms/contact",
            json={"name": "Di", "email": email, "subject": "Invoice", "message": "where is it"},
            timeout=30,
        )
        tickets.append(wait_for_ticket(base_url, response.json()["ticket_id"], API_TOKEN, lambda t: True))
    one, two = (ticket["contact"]["id"] for ticket in tickets)

    merged = switchboard_cli(services.settings, "contact", "merge", one, two)

    assert merged.returncode == 0, merged.stderr
    survivor = contact_until(base_url, two, lambda c: c["id"] == one, "the merge")
    assert survivor["merged_from"] == two and survivor["emails"] == ["di.work@example.com", "di@example.com"]
    assert wait_for_ticket(base_url, tickets[1]["id"], API_TOKEN, lambda t: True)["contact"]["id"] == one

    unmerged = switchboard_cli(services.settings, "contact", "unmerge", two)

    assert unmerged.returncode == 0, unmerged.stderr
    apart = contact_until(base_url, two, lambda c: c["id"] == two, "the unmerge")
    assert apart["tickets"] == [tickets[1]["id"]] and contact(base_url, one)["tickets"] == [tickets[0]["id"]]
    refused = switchboard_cli(services.settings, "contact", "unmerge", two)
    assert refused.returncode != 0 and "not merged" in refused.stderr


def form(base_url: str, email: str, phone: str | None = None) -> str:
    body = {"name": "Ed", "email": email, "subject": "Help", "message": "please", **({"phone": phone} if phone else {})}
    response = httpx.post(f"{base_url}/v1/forms/contact", json=body, timeout=30)
    assert response.status_code == 202, response.text
    return wait_for_ticket(base_url, response.json()["ticket_id"], API_TOKEN, lambda t: True)["contact"]["id"]


async def router_done(settings) -> None:
    """The router (the only service running) has handled everything on its topics."""
    topics = Topics(settings.topic_prefix)
    for spec in (INBOUND, COMMANDS):
        await wait_until_consumed(settings.kafka_bootstrap, topics.group("switchboard-router"), topics.name(spec))


def test_replay_rebuilds_links_verifications_merges_unmerges_and_suggestions(services: ServiceProcesses):
    services.start("router")
    base_url = services.start_http()
    settings = services.settings
    phone = "+34600555444"
    form_contact = form(base_url, "ed@example.com", phone)
    # A Telegram user writes, then proves the form's phone: their contact merges into the form's.
    assert post_update(base_url, telegram_text(7001, 5151, "Hello")).status_code == 200
    eventually(lambda: ticket_of_chat(settings, 5151), "the Telegram ticket")
    assert post_update(base_url, contact_share(7002, 5151, phone)).status_code == 200
    contact_until(base_url, form_contact, lambda c: c["telegram_user_ids"] == ["5151"], "the merge")
    # Another Telegram account proves the same number (recycled): kept apart, suggested.
    assert post_update(base_url, contact_share(7003, 5252, phone)).status_code == 200
    other_ticket = eventually(lambda: ticket_of_chat(settings, 5252), "the second Telegram ticket")
    wait_for_ticket(
        base_url, other_ticket, API_TOKEN, lambda t: any(e["type"] == "contact.merge_suggested" for e in t["history"])
    )
    # By hand: one merge kept, one undone.
    kept, undone = form(base_url, "ed.work@example.com"), form(base_url, "ed.home@example.com")
    for args in (("merge", form_contact, kept), ("merge", form_contact, undone), ("unmerge", undone)):
        assert switchboard_cli(settings, "contact", *args).returncode == 0
    contact_until(base_url, undone, lambda c: "merged_from" not in c and c["id"] == undone, "the unmerge")
    contact_until(base_url, kept, lambda c: c["id"] == form_contact, "the kept merge")
    asyncio.run(router_done(settings))
    services.stop_all()
    before = projections(settings.redis_url)
    assert any(key.endswith(":merged_into") for key in before) and "sb:contacts:created" in before

    redis.Redis.from_url(settings.redis_url).flushdb()
    replay(settings)

    # No SLA service runs here: replay rebuilds the SLA clocks it would keep, which this test leaves aside.
    after = {key: value for key, value in projections(settings.redis_url).items() if not key.startswith("sb:sla:")}
    assert_same_projections(before, after)
