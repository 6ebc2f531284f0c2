"""`/sb merge` and `/sb unmerge` through intake's Slack endpoint (real broker and Redis, intake in process):
checked against the read model, published on the commands topic keyed by the merged contact."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.events import (
    ContactMerged,
    ContactSummary,
    MergeContacts,
    TicketCreated,
    UnmergeContacts,
    agent_command_adapter,
)
from shared.read_model import ReadModel
from shared.topics import COMMANDS
from tests.integration import test_slack_agents as agents
from tests.support import read_topic

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
