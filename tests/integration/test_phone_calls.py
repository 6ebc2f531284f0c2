"""Logged phone calls through the running stack (real broker, Redis and processes; Slack is the fake):
`/sb call` opens the modal and its submission is a routed phone ticket; `switchboard ticket new --channel
phone` does the same, and a reply reaches the caller's email; with no way to reach the caller the agent
is told."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from services.intake.slack_agents import NOT_AN_AGENT
from shared import i18n
from tests.conftest import API_TOKEN, SLACK_SIGNING_SECRET
from tests.fakes.slack_api import TEAM_ID
from tests.support import ServiceProcesses, reply_as_agent, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.integration

ANA = "U0ANA"  # agent ana in the example config


def signed_post(base_url: str, form: dict) -> httpx.Response:
    body = urlencode(form)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": SignatureVerifier(SLACK_SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body),
    }
    return httpx.post(f"{base_url}/v1/slack/events", content=body, headers=headers, timeout=30)


def test_sb_call_opens_the_modal_and_its_submission_is_a_routed_phone_ticket(services: ServiceProcesses, fake_slack):
    services.start("router")
    services.start("sla")
    base_url = services.start_http()
    trigger_id = fake_slack.issue_trigger_id()
    slash = {
        "team_id": TEAM_ID,
        "channel_id": "C0SUPPORT",
        "user_id": ANA,
        "command": "/sb",
        "text": "call",
        "response_url": "https://hooks.slack.com/commands/T0/1/x",
        "trigger_id": trigger_id,
    }
    assert signed_post(base_url, slash).status_code == 200
    [opened] = fake_slack.wait_for_calls_sync("views.open")
    view = opened.args["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == "sb_call_modal"

    values = {
        "caller_name": {"caller_name": {"type": "plain_text_input", "value": "Luis Gómez"}},
        "caller_reach": {"caller_reach": {"type": "plain_text_input", "value": "+34 611 22 33 44"}},
        "summary": {"summary": {"type": "plain_text_input", "value": "Router keeps rebooting"}},
        "direction": {"direction": {"type": "static_select", "selected_option": {"value": "inbound"}}},
        "duration": {"duration": {"type": "number_input", "value": "9"}},
    }
    submission = {
        "type": "view_submission",
        "team": {"id": TEAM_ID},
        "user": {"id": ANA, "team_id": TEAM_ID},
        "api_app_id": "A0SWITCHBOARD",
        "view": {**view, "id": "V0CALL01", "team_id": TEAM_ID, "state": {"values": values}},
    }
    stranger = {**submission, "user": {"id": "U0STRANGER", "team_id": TEAM_ID}}
    refused = signed_post(base_url, {"payload": json.dumps(stranger)}).json()
    assert refused == {"response_action": "errors", "errors": {"summary": i18n.texts("en")(NOT_AN_AGENT)}}
    answer = signed_post(base_url, {"payload": json.dumps(submission)})
    assert answer.status_code == 200 and answer.json()["response_action"] == "update"
    ticket_id = re.search(r"SB-\d+", json.dumps(answer.json())).group(0)
    # Slack retries a slow submission: the same view is the same ticket.
    again = signed_post(base_url, {"payload": json.dumps(submission)})
    assert ticket_id in json.dumps(again.json())

    # Routed and timed like any other ticket.
    ticket = wait_for_ticket(
        base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None and t["sla"]["first_response_due"]
    )
    assert ticket["channel"] == "phone" and ticket["contact"]["phones"] == ["+34611223344"]
    assert ticket["messages"][0]["text"].startswith("[Inbound phone call, 9 min, logged by ")
    assert len(ticket["messages"]) == 1


def test_ticket_new_logs_a_call_whose_replies_reach_the_callers_email(services: ServiceProcesses, smtp_sink):
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    result = switchboard_cli(
        services.settings,
        "ticket",
        "new",
        "--channel",
        "phone",
        "--name",
        "Marta Ruiz",
        "--email",
        "marta@example.com",
        "--summary",
        "Wants to change her plan",
        "--direction",
        "outbound",
        "--duration",
        "4",
    )
    assert result.returncode == 0, result.stderr
    ticket_id = re.search(r"SB-\d+", result.stdout).group(0)
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert ticket["channel"] == "phone" and ticket["contact"]["emails"] == ["marta@example.com"]
    assert ticket["subject"] == "Phone call: Wants to change her plan"

    reply_as_agent(services.settings, ticket_id, "Your plan is changed from next month.")
    [reply] = smtp_sink.wait_for(lambda mail: "Your plan is changed" in mail.message.get_content())
    assert reply.recipients == ["marta@example.com"] and ticket_id in reply.message["Subject"]
    assert len(smtp_sink.wait_for(lambda mail: True)) == 1, "a logged call gets no acknowledgement"

    refused = switchboard_cli(services.settings, "ticket", "new", "--channel", "phone", "--summary", "x")
    assert refused.returncode != 0 and "phone number or email" in refused.stderr


def test_a_reply_to_a_caller_with_no_email_or_whatsapp_is_reported_to_the_agent(services: ServiceProcesses, fake_slack):
    services.start("router")
    services.start("notifier")
    base_url = services.start_http()
    result = switchboard_cli(
        services.settings, "ticket", "new", "--channel", "phone", "--phone", "+44 20 7946 0958", "--summary", "Lost key"
    )
    assert result.returncode == 0, result.stderr
    ticket_id = re.search(r"SB-\d+", result.stdout).group(0)
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    reply_as_agent(services.settings, ticket_id, "We found it.")
    fake_slack.wait_for_calls_sync(
        "chat.postMessage", predicate=lambda call: "no channel to answer" in (call.args.get("text") or "")
    )
