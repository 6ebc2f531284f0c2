"""Contact tags through the running stack (real broker, Redis and processes): an admin tags a contact with
the CLI; the contact's next ticket carries the tags in `ticket.created`, a `contact_tag` rule fires on it and
the SLA policy for the tag sets its deadline; replay rebuilds the tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
import yaml

from shared.settings import EXAMPLE_CONFIG
from tests.conftest import API_TOKEN
from tests.integration.lost_redis import (
    assert_same_projections,
    email_ticket,
    projections,
    replay,
    settle,
    start_stack,
    wait_for_event,
)
from tests.integration.test_contacts_stack import contact_until
from tests.integration.test_email_stack import mail
from tests.support import ServiceProcesses, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.integration

SENDER = "vera@customer.example"


def config_for_vips(directory: Path) -> Path:
    """The example config plus a rule raising vip contacts' tickets and a faster SLA policy for them."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["rules"].insert(0, {"name": "vip customers", "when": {"contact_tag": "vip"}, "set": {"priority": "high"}})
    config["sla_policies"].insert(0, {"id": "vip", "when": {"contact_tag": ["vip"]}, "first_response": "20m"})
    path = directory / "vips.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


async def test_a_tagged_contact_s_new_ticket_carries_its_tags_fires_the_rule_and_gets_the_vip_policy(
    services: ServiceProcesses, smtp_sink, tmp_path
):
    stack = start_stack(services, config_for_vips(tmp_path))
    settings = stack.settings
    first, _, _ = email_ticket(stack, smtp_sink, SENDER, "Invoice missing")
    contact_id = wait_for_ticket(stack.base_url, first, API_TOKEN, lambda t: t["contact"])["contact"]["id"]
    before = await wait_for_event(settings, lambda e: e["type"] == "sla.deadline_set" and e["ticket_id"] == first)
    assert before["policy"] == "standard"

    for change in (("--add", "VIP", "--add", "trial"), ("--remove", "trial")):
        tagged = switchboard_cli(settings, "contact", "tag", contact_id, *change)
        assert tagged.returncode == 0, tagged.stderr
    contact_until(stack.base_url, contact_id, lambda c: c["tags"] == ["vip"], "the tags")
    shown = switchboard_cli(settings, "contact", "show", contact_id)
    assert shown.returncode == 0 and json.loads(shown.stdout)["tags"] == ["vip"]
    refused = switchboard_cli(settings, "contact", "tag", "c_nobody", "--add", "vip")
    assert refused.returncode != 0 and "no contact c_nobody" in refused.stderr

    stack.send_mail(mail("New laptop order", "I would like to order twelve laptops for the team.", sender=SENDER))
    created = await wait_for_event(
        settings, lambda e: e["type"] == "ticket.created" and e["ticket_id"] != first and e["contact_tags"]
    )
    assert created["contact"]["contact_id"] == contact_id and created["contact_tags"] == ["vip"]
    assert created["rules"][0] == "vip customers" and created["priority"] == "high"
    deadline = await wait_for_event(
        settings, lambda e: e["type"] == "sla.deadline_set" and e["ticket_id"] == created["ticket_id"]
    )
    assert (deadline["policy"], deadline["metric"], deadline["target_seconds"]) == ("vip", "first_response", 1200)

    await settle(settings)
    services.stop_all()
    live = projections(settings.redis_url)
    redis.Redis.from_url(settings.redis_url).flushdb()
    replay(settings)
    assert_same_projections(live, projections(settings.redis_url))
