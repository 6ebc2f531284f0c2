"""`/sb merge`, `/sb unmerge` and `/sb tag` through intake's Slack endpoint (real broker and Redis, intake in
process): checked against the read model, published on the commands topic keyed by the (merged) contact; and
`/sb tag` through the running stack, where the router applies it to the contact's tags."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.intake.slack_agents import NOT_AN_AGENT
from shared import i18n
from shared.events import (
    ContactMerged,
    ContactSummary,
    MergeContacts,
    TagContact,
    TicketCreated,
    UnmergeContacts,
    agent_command_adapter,
)
from shared.read_model import ReadModel
from shared.topics import COMMANDS
from tests.fakes.slack_api import TEAM_ID
from tests.integration import test_slack_agents as agents
from tests.integration.test_contacts_stack import contact, contact_until, form
from tests.integration.test_phone_calls import signed_post
from tests.support import ServiceProcesses, read_topic

pytestmark = pytest.mark.integration
# The in-process intake with Slack routes of the agents' tests.
slack_api, slack = agents.slack_api, agents.slack
ANA = agents.ANA


async def two_contacts(redis) -> None:
    now = datetime.now(UTC)
    await ReadModel(redis).apply(
        [
            TicketCreated(
                event_id=uuid.uuid4(),
                occurred_at=now,
                ticket_id=ticket_id,
                channel="form",
                subject="Help",
                contact=ContactSummary(contact_id=contact_id, identities=[f"email:{contact_id}@example.com"]),
                team="support",
                category="general",
                priority="normal",
            )
            for ticket_id, contact_id in (("SB-5001", "c_one"), ("SB-5002", "c_two"))
        ]
    )


async def test_sb_merge_publishes_the_merge_keyed_by_the_merged_contact(slack):
    await two_contacts(slack.redis)

    answer = (await slack.slash(ANA, "merge c_one c_two")).json()

    assert answer["response_type"] == "ephemeral" and "Merging c_two into c_one" in answer["text"]
    [record] = await read_topic(slack.settings.kafka_bootstrap, slack.topic(COMMANDS), at_least=1)
    command = agent_command_adapter.validate_json(record.value)
    assert isinstance(command, MergeContacts) and record.key == b"c_two"
    assert (command.contact_id, command.into_contact_id, command.agent_id) == ("c_two", "c_one", "ana")


async def test_sb_unmerge_of_a_merged_contact_is_published_and_of_another_refused_at_once(slack):
    await two_contacts(slack.redis)

    refused = (await slack.slash(ANA, "unmerge c_two")).json()
    assert refused["text"] == "Nothing done: c_two is not merged into another contact."
    assert (await slack.slash(ANA, "merge c_one")).json()["text"].startswith("Which contacts?")
    assert (await slack.slash(ANA, "merge c_one c_nobody")).json()[
        "text"
    ] == "Nothing done: there is no contact c_nobody."
    assert await slack.no_commands()

    merged = ContactMerged(
        event_id=uuid.uuid4(), occurred_at=datetime.now(UTC), contact_id="c_two", survivor_id="c_one", actor="ana"
    )
    await ReadModel(slack.redis).apply([merged])
    answer = (await slack.slash(ANA, "unmerge c_two")).json()

    assert answer["text"].startswith("Unmerging c_two")
    [record] = await read_topic(slack.settings.kafka_bootstrap, slack.topic(COMMANDS), at_least=1)
    assert isinstance(agent_command_adapter.validate_json(record.value), UnmergeContacts)


async def test_sb_tag_of_a_ticket_publishes_the_tag_change_of_its_contact_keyed_by_the_contact(slack):
    await two_contacts(slack.redis)

    answer = (await slack.slash(ANA, "tag sb-5002 +VIP -trial beta")).json()

    assert answer["response_type"] == "ephemeral"
    assert answer["text"] == "Tagging contact c_two (SB-5002): `+vip +beta -trial`; its tags change in a moment."
    [record] = await read_topic(slack.settings.kafka_bootstrap, slack.topic(COMMANDS), at_least=1)
    command = agent_command_adapter.validate_json(record.value)
    assert isinstance(command, TagContact) and record.key == b"c_two"
    assert (command.contact_id, command.add, command.remove, command.agent_id) == (
        "c_two",
        ["vip", "beta"],
        ["trial"],
        "ana",
    )


async def test_sb_tag_without_tags_an_unknown_target_or_a_bad_tag_is_answered_at_once_and_sends_nothing(slack):
    await two_contacts(slack.redis)

    async def answer(text: str) -> str:
        response = (await slack.slash(ANA, text)).json()
        assert response["response_type"] == "ephemeral"
        return response["text"]

    assert (await answer("tag SB-5001")).startswith("Which contact, which tags?")
    assert (await answer("tag")).startswith("Which contact, which tags?")
    assert await answer("tag SB-9999 +vip") == "Nothing done: there is no ticket SB-9999."
    assert await answer("tag c_nobody vip") == "Nothing done: there is no contact c_nobody."
    assert (await answer("tag c_one +vip +<b>ad")).startswith("Nothing done; not a tag: +&lt;b&gt;ad (a tag is")
    assert await slack.no_commands()


def test_sb_tag_from_an_agent_tags_the_tickets_contact_in_the_read_model_and_a_stranger_is_refused(
    services: ServiceProcesses,
):
    services.start("router")
    base_url = services.start_http()
    contact_id = form(base_url, "vera@customer.example")
    [ticket_id] = contact(base_url, contact_id)["tickets"]

    def slash(user: str, text: str) -> dict:
        form_fields = {
            "team_id": TEAM_ID,
            "channel_id": agents.TEAM_CHANNEL,
            "user_id": user,
            "command": "/sb",
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T0/1/x",
            "trigger_id": str(uuid.uuid4()),
        }
        response = signed_post(base_url, form_fields)
        assert response.status_code == 200, response.text
        return response.json()

    refused = slash(agents.STRANGER, f"tag {ticket_id} +blocked")
    assert refused == {"response_type": "ephemeral", "text": i18n.texts("en")(NOT_AN_AGENT)}
    asked = slash(ANA, f"tag {ticket_id} +VIP +trial")
    assert asked["text"].startswith(f"Tagging contact {contact_id} ({ticket_id}): `+vip +trial`")
    contact_until(base_url, contact_id, lambda c: c["tags"] == ["trial", "vip"], "the tags")
    slash(ANA, f"tag {contact_id} -trial")
    # One partition per contact: had the stranger's "+blocked" been sent, it would show before these.
    contact_until(base_url, contact_id, lambda c: c["tags"] == ["vip"], "the removed tag")
