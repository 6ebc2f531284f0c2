"""The three SLA clocks through the stack, on the real broker and Redis (issue #12, clock semantics).

A mail opens a ticket under a policy measuring first response, next response and resolution; agents
work it from the command line and the customer answers by mail. The clocks are seen as a user sees
them: the `sla.*` events on the ticket topic, the read API's `sla`, and the timers left in Redis.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
import yaml

from services.sla.timers import ticket_timers_key
from shared.settings import EXAMPLE_CONFIG
from shared.topics import TICKETS
from tests.conftest import API_TOKEN
from tests.integration.lost_redis import email_ticket, events_on, settle, start_stack, wait_for_event
from tests.integration.test_email_stack import mail
from tests.support import ServiceProcesses, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.integration

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def config_with_every_clock(directory: Path) -> Path:
    """The example config, its support team on a policy with all three clocks (long: none fires here)."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["sla_policies"] = [
        {
            "id": "standard",
            "first_response": "1h",
            "next_response": "2h",
            "resolution": "8h",
            "targets": {"urgent": {"first_response": "15m", "resolution": "2h"}},
            "pause_on": ["pending"],
            "warn_at": [0.5, "10m"],
        }
    ]
    path = directory / "every-clock.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def sla_events(events: list[dict], ticket_id: str) -> list[tuple[str, str]]:
    return [(e["type"], e["metric"]) for e in events if e["type"].startswith("sla.") and e["ticket_id"] == ticket_id]


async def test_notes_pending_and_the_customers_reply_move_the_clocks_as_the_readme_says(
    services: ServiceProcesses, smtp_sink, tmp_path
):
    stack = start_stack(services, config_with_every_clock(tmp_path))
    settings = stack.settings
    ticket_id, first_mail, _ = email_ticket(stack, smtp_sink, "rosa@customer.example", "Invoice missing")
    store = redis.Redis.from_url(settings.redis_url, decode_responses=True)

    def cli(*args: str) -> None:
        result = switchboard_cli(settings, "ticket", *args)
        assert result.returncode == 0, result.stderr

    await wait_for_event(settings, lambda e: e["type"] == "sla.deadline_set" and e["metric"] == "resolution")
    # An internal note is no answer: first response keeps running, its timers stay.
    cli("note", ticket_id, "checking the billing system", "--agent", "ana")
    cli("priority", ticket_id, "urgent")
    urgent = await wait_for_event(
        settings, lambda e: e["type"] == "sla.deadline_set" and "urgent" in (e["reason"] or "")
    )
    assert urgent["metric"] == "first_response" and urgent["target_seconds"] == 15 * 60
    assert store.scard(ticket_timers_key(ticket_id, "first_response")) == 3  # at 50 %, 10 min before, breach
    cli("reply", ticket_id, "We are on it.", "--agent", "ana")
    await wait_for_event(settings, lambda e: e["type"] == "sla.met" and e["metric"] == "first_response")
    await settle(settings)
    # Met before its warning: neither the warnings nor the breach are left to fire.
    assert store.scard(ticket_timers_key(ticket_id, "first_response")) == 0

    cli("status", ticket_id, "pending", "--reason", "waiting for the invoice number", "--agent", "ana")
    paused = await wait_for_event(settings, lambda e: e["type"] == "sla.paused")
    assert paused["metric"] == "resolution" and paused["reason"] == "status pending"
    ticket = wait_for_ticket(stack.base_url, ticket_id, API_TOKEN, lambda t: t["sla"]["resolution_status"] == "paused")
    await settle(settings)
    assert ticket["sla"]["resolution_due"] is None and store.scard(ticket_timers_key(ticket_id, "resolution")) == 0
    shown = switchboard_cli(settings, "sla", "show", ticket_id, "--json")
    assert shown.returncode == 0, shown.stderr
    clocks = {row["metric"]: row for row in json.loads(shown.stdout)["clocks"]}
    assert (clocks["first_response"]["state"], clocks["resolution"]["state"]) == ("met", "paused")
    assert clocks["resolution"]["target"] == "2:00:00" and clocks["resolution"]["due"] is None

    # The customer answers by mail: the ticket reopens, resolution resumes with the time it used kept,
    # and the message waits for a next response.
    stack.send_mail(mail(f"Re: [{ticket_id}] Invoice missing", "It is INV-204.", sender="rosa@customer.example"))
    resumed = await wait_for_event(
        settings, lambda e: e["type"] == "sla.deadline_set" and e["metric"] == "resolution" and e["used_seconds"] > 0
    )
    assert resumed["reason"] == "status open" and resumed["target_seconds"] == 2 * 3600
    await wait_for_event(settings, lambda e: e["type"] == "sla.deadline_set" and e["metric"] == "next_response")
    cli("reply", ticket_id, "Found it, thanks.", "--agent", "ana")
    await wait_for_event(settings, lambda e: e["type"] == "sla.met" and e["metric"] == "next_response")
    cli("status", ticket_id, "solved", "--agent", "ana")
    ticket = wait_for_ticket(stack.base_url, ticket_id, API_TOKEN, lambda t: t["sla"]["resolution_status"] == "met")
    assert ticket["sla"]["first_response_status"] == "met" and ticket["sla"]["next_response_status"] == "met"
    # The read API shows each clock as `switchboard sla show` does.
    await settle(settings)
    ticket = wait_for_ticket(stack.base_url, ticket_id, API_TOKEN, lambda t: t["sla"]["clocks"])
    clocks = {row["metric"]: row for row in ticket["sla"]["clocks"]}
    assert [clocks[metric]["state"] for metric in ("first_response", "next_response", "resolution")] == ["met"] * 3
    assert clocks["resolution"]["target"] == "2:00:00"


def config_escalating_fast(directory: Path) -> Path:
    """Support's first response due in 3 s; at the breach the lead is told, the priority raised and the
    ticket handed up the escalation chain."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    # The lead works by a calendar in the example config: off shift, the dispatcher would hand her tickets back
    # to the queue (the time of day must not decide this test).
    for agent in config["agents"]:
        agent.pop("calendar", None)
    # A business calendar (Shanghai time, open all day every day), so the deadline goes through its arithmetic.
    config["calendars"].append(
        {"id": "desk", "timezone": "Asia/Shanghai", "hours": dict.fromkeys(WEEK, ["00:00-24:00"])}
    )
    config["sla_policies"] = [
        {
            "id": "standard",
            "calendar": "desk",
            "first_response": "3s",
            "warn_at": [],
            "escalation": [{"at": "breach", "notify": ["lead"], "raise_priority": True, "reassign": "lead"}],
        }
    ]
    path = directory / "escalating.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


async def test_two_sla_instances_fire_an_escalation_level_once_and_the_router_applies_it(
    services: ServiceProcesses, smtp_sink, tmp_path
):
    config = config_escalating_fast(tmp_path)
    stack = start_stack(services, config)
    services.start("sla", instance="sla-2", SWITCHBOARD_CONFIG=str(config))
    settings = stack.settings
    ticket_id, _, _ = email_ticket(stack, smtp_sink, "omar@customer.example", "Refund still missing")

    escalated = await wait_for_event(
        settings, lambda e: e["type"] == "ticket.escalated" and e["ticket_id"] == ticket_id
    )
    assert escalated["actor"] == "system" and "first response SLA" in escalated["reason"]
    ticket = wait_for_ticket(stack.base_url, ticket_id, API_TOKEN, lambda t: t["priority"] == "high")
    assert ticket["assignee"]["agent_id"] == "lena", "the lead, the first level of support's chain"
    await settle(settings)
    events = [e for e in await events_on(settings, TICKETS) if e["ticket_id"] == ticket_id]
    assert len({e["event_id"] for e in events if e["type"] == "sla.escalated"}) == 1
    assert len({e["event_id"] for e in events if e["type"] == "ticket.escalated"}) == 1
    [level] = {e["event_id"]: e for e in events if e["type"] == "sla.escalated"}.values()
    assert level["notify_users"] == ["U0LENA"] and level["raised_to"] == "high"


async def test_an_sla_service_started_with_a_changed_policy_moves_the_open_clocks(
    services: ServiceProcesses, smtp_sink, tmp_path
):
    stack = start_stack(services, config_with_every_clock(tmp_path))
    settings = stack.settings
    ticket_id, _, _ = email_ticket(stack, smtp_sink, "ines@customer.example", "Password reset")
    first = await wait_for_event(settings, lambda e: e["type"] == "sla.deadline_set" and e["ticket_id"] == ticket_id)
    await settle(settings)
    services.kill("sla")

    config = yaml.safe_load((tmp_path / "every-clock.yaml").read_text())
    config["sla_policies"][0]["first_response"] = "20m"
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(config, allow_unicode=True))
    services.start("sla", SWITCHBOARD_CONFIG=str(changed))

    moved = await wait_for_event(
        settings, lambda e: e["type"] == "sla.deadline_set" and e["reason"] == "config changed"
    )
    assert (moved["ticket_id"], moved["metric"], moved["target_seconds"]) == (ticket_id, "first_response", 1200)
    started = datetime.fromisoformat(first["due_at"]) - timedelta(hours=1)
    assert datetime.fromisoformat(moved["due_at"]) == started + timedelta(minutes=20)
    shown = switchboard_cli(settings.model_copy(update={"config": changed}), "sla", "show", ticket_id, "--json")
    assert {row["metric"]: row["target"] for row in json.loads(shown.stdout)["clocks"]}["first_response"] == "0:20:00"
    # The restarted service joins its group (the killed member's session runs out first) before the test ends.
    await settle(settings)


async def test_a_breach_that_fell_due_while_the_sla_service_was_killed_fires_once_after_its_restart(
    services: ServiceProcesses, smtp_sink, tmp_path
):
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["sla_policies"] = [{"id": "standard", "first_response": "4s", "warn_at": []}]
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    stack = start_stack(services, path)
    settings = stack.settings
    ticket_id, _, _ = email_ticket(stack, smtp_sink, "kim@customer.example", "Locked out")
    deadline = await wait_for_event(settings, lambda e: e["type"] == "sla.deadline_set" and e["ticket_id"] == ticket_id)
    await settle(settings)
    services.kill("sla")  # SIGKILL: its timers stay in Redis
    # The breach falls due while no SLA service runs: time has to pass here, there is no event to await.
    due = datetime.fromisoformat(deadline["due_at"])
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 1)
    assert [e for e in await events_on(settings, TICKETS) if e["type"] == "sla.breached"] == []
    services.start("sla", SWITCHBOARD_CONFIG=str(path))

    await wait_for_event(settings, lambda e: e["type"] == "sla.breached" and e["ticket_id"] == ticket_id)
    await settle(settings)
    breaches = {e["event_id"] for e in await events_on(settings, TICKETS) if e["type"] == "sla.breached"}
    assert len(breaches) == 1
