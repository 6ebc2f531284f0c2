"""The agents' loop in Slack, end to end on the real broker and Redis (issue #10's acceptance).

A form ticket's card arrives in the team channel with the eight buttons; another agent claims it and
the card follows; the agent's thread reply reaches the customer by email, a `note:` does not;
resolving asks the customer for a rating, whose link records it; the customer writing again reopens
the ticket. A Slack user who is not an agent, a forged signature and a replayed interaction change
nothing.
"""

from __future__ import annotations

import json
import re
import smtplib
import time
from email.message import EmailMessage
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from tests.conftest import API_TOKEN, SLACK_SIGNING_SECRET, free_port
from tests.support import ServiceProcesses, eventually, wait_for_ticket

pytestmark = pytest.mark.integration

TEAM_CHANNEL = "C0SUPPORT"
BUTTONS = {"sb_claim", "sb_reply", "sb_note", "sb_reassign", "sb_pending", "sb_resolve", "sb_escalate", "sb_reopen"}
FORM = {"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "My password is refused."}


def signed_headers(body: str, content_type: str, secret: str = SLACK_SIGNING_SECRET) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body),
    }


def post_interaction(base_url: str, payload: dict, secret: str = SLACK_SIGNING_SECRET) -> httpx.Response:
    body = urlencode({"payload": json.dumps(payload)})
    headers = signed_headers(body, "application/x-www-form-urlencoded", secret)
    return httpx.post(f"{base_url}/v1/slack/events", content=body, headers=headers, timeout=30)


def post_event(base_url: str, event: dict, event_id: str) -> httpx.Response:
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0SWITCHBOARD",
            "api_app_id": "A0SWITCHBOARD",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    )
    headers = signed_headers(body, "application/json")
    return httpx.post(f"{base_url}/v1/slack/events", content=body, headers=headers, timeout=30)


def button_click(action_id: str, ticket_id: str, user_id: str, card_ts: str, trigger_id: str = "1.2.abc") -> dict:
    return {
        "type": "block_actions",
        "team": {"id": "T0SWITCHBOARD", "domain": "switchboard"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0SWITCHBOARD"},
        "api_app_id": "A0SWITCHBOARD",
        "token": "legacy-verification-token",
        "trigger_id": trigger_id,
        "channel": {"id": TEAM_CHANNEL, "name": "support"},
        "container": {"type": "message", "message_ts": card_ts, "channel_id": TEAM_CHANNEL, "is_ephemeral": False},
        "message": {"type": "message", "ts": card_ts, "text": ticket_id},
        "response_url": "https://hooks.slack.invalid/actions/T0/1/x",
        "actions": [
            {
                "type": "button",
                "action_id": action_id,
                "block_id": "actions",
                "value": ticket_id,
                "text": {"type": "plain_text", "text": action_id},
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def smtp_listens(port: int) -> bool:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            return client.noop()[0] == 250
    except OSError:
        return False


def card_buttons(call) -> list[dict]:
    blocks = call.args.get("blocks")
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks or []
    return [element for block in blocks if block["type"] == "actions" for element in block["elements"]]


def history_types(ticket: dict) -> list[str]:
    return [entry["type"] for entry in ticket["history"]]


def test_an_agent_works_a_form_ticket_end_to_end_from_slack(services: ServiceProcesses, smtp_sink, fake_slack):
    for name in ("router", "sla", "notifier"):
        services.start(name)
    smtp_port = free_port()
    services.start("intake-smtp", SWITCHBOARD_SMTP_PORT=str(smtp_port), SWITCHBOARD_OPS_PORT=str(free_port()))
    base_url = services.start_http()
    eventually(lambda: smtp_listens(smtp_port), "intake-smtp listens")
    response = httpx.post(f"{base_url}/v1/forms/contact", json=FORM, timeout=30)
    assert response.status_code == 202, response.text
    ticket_id = response.json()["ticket_id"]

    # The card: in the team channel, the eight buttons, each naming the ticket.
    [card] = fake_slack.wait_for_calls_sync(
        "chat.postMessage", timeout=30, predicate=lambda c: c.args["channel"] == TEAM_CHANNEL and card_buttons(c)
    )
    buttons = card_buttons(card)
    assert {button["action_id"] for button in buttons} == BUTTONS
    assert {button["value"] for button in buttons} == {ticket_id}
    card_ts = card.response["ts"]
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert ticket["status"] == "new"
    first_assignee = ticket["assignee"]["agent_id"]
    claimer = next(agent for agent in ("ben", "ana") if agent != first_assignee)
    claimer_slack = {"ana": "U0ANA", "ben": "U0BEN"}[claimer]

    # Another agent claims it: the assignee changes and the card is updated in place.
    claim = button_click("sb_claim", ticket_id, claimer_slack, card_ts)
    assert post_interaction(base_url, claim).status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"]["agent_id"] == claimer)
    assert ticket["status"] == "open"
    fake_slack.wait_for_calls_sync(
        "chat.update", timeout=30, predicate=lambda c: c.args["channel"] == TEAM_CHANNEL and c.args["ts"] == card_ts
    )

    # The same click replayed, a non-agent's click and a forged one change nothing.
    events_before = len(ticket["history"])
    assert post_interaction(base_url, claim).status_code == 200
    assert post_interaction(base_url, button_click("sb_resolve", ticket_id, "U0STRANGER", card_ts)).status_code == 200
    forged = post_interaction(base_url, button_click("sb_resolve", ticket_id, claimer_slack, card_ts), "wrong-secret")
    assert forged.status_code == 401

    # A thread reply reaches the customer by email, in the thread of our acknowledgement; a note does not.
    note = "note: customer is on the old plan"
    answer = "Please reset it from the login page."
    note_ts = fake_slack.add_message(TEAM_CHANNEL, claimer_slack, note, card_ts)
    reply_ts = fake_slack.add_message(TEAM_CHANNEL, claimer_slack, answer, card_ts)
    thread = {"type": "message", "channel": TEAM_CHANNEL, "user": claimer_slack, "thread_ts": card_ts}
    assert post_event(base_url, {**thread, "ts": note_ts, "text": note}, "EvN1").is_success
    assert post_event(base_url, {**thread, "ts": reply_ts, "text": answer}, "EvR1").is_success
    [ack] = smtp_sink.wait_for(lambda mail: mail.message["Auto-Submitted"] == "auto-replied")
    [reply] = smtp_sink.wait_for(lambda mail: "reset it from the login page" in mail.message.get_content())
    assert reply.recipients == ["ana@example.com"]
    assert reply.message["Subject"] == f"[{ticket_id}] Re: Cannot log in"
    assert reply.message["In-Reply-To"] == ack.message["Message-ID"]
    assert ack.message["Message-ID"] in reply.message["References"]
    fake_slack.wait_for_calls_sync("reactions.add", timeout=30, predicate=lambda c: c.args["timestamp"] == reply_ts)

    # Resolving asks for a rating; the link records it.
    assert post_interaction(base_url, button_click("sb_resolve", ticket_id, claimer_slack, card_ts)).status_code == 200
    [survey] = smtp_sink.wait_for(lambda mail: "/v1/csat/" in mail.message.get_content())
    link = re.search(r"https?://\S+/v1/csat/\S+", survey.message.get_content()).group(0)
    assert httpx.get(link, timeout=30).status_code == 200
    rated = httpx.post(link, data={"score": "5", "comment": "Quick, thanks"}, timeout=30, follow_redirects=True)
    assert rated.status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: (t.get("csat") or {}).get("score") == 5)
    assert ticket["status"] == "solved"
    assert not any("old plan" in mail.message.get_content() for mail in smtp_sink.received)

    # Nothing the replayed, foreign or forged clicks asked for happened.
    types = history_types(ticket)
    assert types.count("ticket.assigned") == 2 and types.count("ticket.status_changed") == 2
    assert len(ticket["history"]) > events_before

    # The customer writes again: the ticket reopens.
    mail = EmailMessage()
    mail["From"], mail["To"] = "Ana <ana@example.com>", "support@example.com"
    mail["Subject"], mail["Message-ID"] = f"Re: [{ticket_id}] Cannot log in", "<again@example.com>"
    mail["In-Reply-To"] = reply.message["Message-ID"]
    mail.set_content("It worked once, now it fails again.")
    with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
        client.send_message(mail)
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["status"] == "open")
    assert history_types(ticket)[-1] in ("ticket.status_changed", "ticket.message_added")
