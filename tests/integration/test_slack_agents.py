"""The agents' side of Slack in intake-http: signed interactivity, thread replies and `/sb` → commands on
the real broker (Slack's Web API is the FakeSlackApi: views.open, chat.postEphemeral)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from itertools import count
from urllib.parse import urlencode

import httpx
import pytest
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from services.intake.core import IntakeProcess
from services.intake.slack_events import slack_routes
from shared.agents import Availability
from shared.conversations import remember_conversation
from shared.events import (
    AgentAvailabilityChanged,
    AgentNote,
    AgentReply,
    ClaimTicket,
    RateTicket,
    SetStatus,
    SlackOrigin,
    agent_command_adapter,
)
from shared.ids import derived_id
from shared.read_model import agent_tickets_key, team_queue_key, ticket_key
from shared.settings import Settings
from shared.topics import AGENTS, COMMANDS, Topics
from tests.conftest import SLACK_SIGNING_SECRET, SLACK_TOKEN
from tests.fakes.slack_api import TEAM_ID, FakeSlackApi
from tests.support import in_process_client, read_topic, topic_size

pytestmark = pytest.mark.integration

TEAM_CHANNEL = "C0SUPPORT"  # the example config's support team channel
ANA, BEN = "U0ANA", "U0BEN"  # agents ana and ben
STRANGER = "U0CUSTOMER"
TICKET = "SB-1042"
_sequence = count(1)


def next_ts() -> str:
    return f"{int(time.time())}.{next(_sequence):06d}"


@dataclass
class SlackAgentsApp:
    client: httpx.AsyncClient
    settings: Settings
    redis: object

    def topic(self, spec) -> str:
        return Topics(self.settings.topic_prefix).name(spec)

    async def send(
        self, body: str, content_type: str, *, secret: str = SLACK_SIGNING_SECRET, age: int = 0
    ) -> httpx.Response:
        """Posts `body` signed with `secret`, as Slack does, `age` seconds ago."""
        timestamp = str(int(time.time()) - age)
        signature = SignatureVerifier(secret).generate_signature(timestamp=timestamp, body=body)
        return await self.client.post(
            "/v1/slack/events",
            content=body,
            headers={
                "Content-Type": content_type,
                "X-Slack-Request-Timestamp": timestamp,
                "X-Slack-Signature": signature,
            },
        )

    async def interact(self, payload: dict, **kwargs) -> httpx.Response:
        """Posts an interaction as Slack does: a form whose `payload` field is the JSON."""
        return await self.send(
            urlencode({"payload": json.dumps(payload)}), "application/x-www-form-urlencoded", **kwargs
        )

    async def slash(self, user: str, text: str, trigger_id: str = "") -> httpx.Response:
        form = {
            "token": "legacy",
            "team_id": TEAM_ID,
            "channel_id": TEAM_CHANNEL,
            "user_id": user,
            "command": "/sb",
            "text": text,
            "response_url": "https://hooks.slack.com/commands/T0/1/x",
            "trigger_id": trigger_id or f"{next(_sequence)}.1.abc",
        }
        return await self.send(urlencode(form), "application/x-www-form-urlencoded")

    async def event(self, event: dict) -> httpx.Response:
        payload = {
            "team_id": TEAM_ID,
            "api_app_id": "A0SWITCHBOARD",
            "type": "event_callback",
            "event_id": f"Ev{next(_sequence):08d}",
            "event_time": int(time.time()),
            "event": event,
        }
        return await self.send(json.dumps(payload), "application/json")

    async def commands(self, expected: int) -> list:
        records = await read_topic(self.settings.kafka_bootstrap, self.topic(COMMANDS), at_least=expected)
        assert len(records) == expected, f"expected {expected} commands, got {len(records)}"
        commands = [agent_command_adapter.validate_json(record.value) for record in records]
        assert [record.key for record in records] == [command.ticket_id.encode() for command in commands]
        return commands

    async def no_commands(self) -> bool:
        return await topic_size(self.settings.kafka_bootstrap, self.topic(COMMANDS)) == 0


@pytest.fixture
def slack_api() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as api:
        yield api


@pytest.fixture
async def slack(request, settings: Settings, slack_api: FakeSlackApi) -> AsyncIterator[SlackAgentsApp]:
    """Indirectly parametrised by a `teams[].language` for every team (default: the config's)."""
    async with slack_app(settings, slack_api, getattr(request, "param", None)) as app:
        yield app


@asynccontextmanager
async def slack_app(
    settings: Settings, slack_api: FakeSlackApi, team_language: str | None = None
) -> AsyncIterator[SlackAgentsApp]:
    settings = settings.model_copy(
        update={
            "slack_bot_token": SecretStr(SLACK_TOKEN),
            "slack_signing_secret": SecretStr(SLACK_SIGNING_SECRET),
            "slack_api_url": slack_api.base_url,
        }
    )
    process = IntakeProcess("intake-http", settings)
    if team_language is not None:
        teams = [team.model_copy(update={"language": team_language}) for team in process.intake.config.teams]
        process.intake.config = process.intake.config.model_copy(update={"teams": teams})
    app = process.app()
    app.include_router(slack_routes(process.intake, settings))
    async with in_process_client(app) as client:
        yield SlackAgentsApp(client, settings, process.intake.redis)


def button(action_id: str, user: str, value: str = TICKET, *, trigger_id: str = "13345224609.1.x") -> dict:
    """A block_actions payload: `user` pressed a card button in the team channel."""
    card_ts = "1700000000.000100"
    return {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0SWITCHBOARD",
        "token": "legacy",
        "container": {"type": "message", "message_ts": card_ts, "channel_id": TEAM_CHANNEL, "is_ephemeral": False},
        "trigger_id": trigger_id,
        "team": {"id": TEAM_ID, "domain": "switchboard-test"},
        "channel": {"id": TEAM_CHANNEL, "name": "support"},
        "message": {"type": "message", "ts": card_ts, "text": "SB-1042"},
        "response_url": "https://hooks.slack.com/actions/T0/1/x",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "actions",
                "type": "button",
                "value": value,
                "action_ts": next_ts(),
                "text": {"type": "plain_text", "text": action_id},
            }
        ],
    }


def submission(callback_id: str, user: str, values: dict, *, view_id: str = "V0000001") -> dict:
    return {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "switchboard-test"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM_ID},
        "api_app_id": "A0SWITCHBOARD",
        "token": "legacy",
        "trigger_id": "1.2.3",
        "view": {
            "id": view_id,
            "team_id": TEAM_ID,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": TICKET,
            "hash": "1700000000.abcdef",
            "state": {"values": values},
        },
    }


async def test_a_claim_by_an_agent_is_a_claim_command_with_the_same_id_when_sent_again(slack):
    press = button("sb_claim", BEN)
    first = await slack.interact(press)
    again = await slack.interact(press)
    assert first.status_code == again.status_code == 200, first.text

    claim, replayed = await slack.commands(2)
    assert isinstance(claim, ClaimTicket)
    assert (claim.ticket_id, claim.agent_id) == (TICKET, "ben")
    assert claim.origin.user_id == BEN and claim.origin.channel_id == TEAM_CHANNEL
    assert claim.origin.message_ts == "1700000000.000100"
    # Slack's retry, or a replay of the signed request: the router applies the command once, by its ID.
    assert replayed.event_id == claim.event_id


async def test_status_buttons_set_the_status(slack):
    for action_id in ("sb_pending", "sb_resolve", "sb_reopen"):
        assert (await slack.interact(button(action_id, ANA))).status_code == 200
    commands = await slack.commands(3)
    assert sorted(command.status for command in commands) == ["open", "pending", "solved"]
    assert all(isinstance(command, SetStatus) and command.agent_id == "ana" for command in commands)


async def test_a_non_agent_s_click_is_refused_and_publishes_nothing(slack, slack_api):
    response = await slack.interact(button("sb_claim", STRANGER))
    assert response.status_code == 200
    assert await slack.no_commands()
    [told] = slack_api.calls_to("chat.postEphemeral")
    assert told.args["user"] == STRANGER and told.args["channel"] == TEAM_CHANNEL
    assert "Only Switchboard agents" in told.args["text"]


@pytest.mark.parametrize("forge", [{"secret": "not-the-signing-secret"}, {"age": 301}], ids=["forged", "stale"])
async def test_a_forged_or_stale_interaction_gets_401_and_publishes_nothing(slack, slack_api, forge):
    response = await slack.interact(button("sb_claim", BEN), **forge)
    assert response.status_code == 401
    assert await slack.no_commands()
    assert slack_api.calls == []


async def test_sb_reply_opens_a_modal_whose_submission_is_a_reply(slack, slack_api):
    trigger_id = slack_api.issue_trigger_id()
    assert (await slack.interact(button("sb_reply", ANA, trigger_id=trigger_id))).status_code == 200
    [opened] = slack_api.calls_to("views.open")
    assert opened.ok, opened.response
    view = opened.response["view"]
    assert (view["callback_id"], view["private_metadata"]) == ("sb_reply_modal", TICKET)
    assert view["blocks"][0]["block_id"] == view["blocks"][0]["element"]["action_id"] == "text"
    assert await slack.no_commands()

    values = {"text": {"text": {"type": "plain_text_input", "value": "  It works again, sorry!  "}}}
    sent = submission("sb_reply_modal", ANA, values, view_id=view["id"])
    response = await slack.interact(sent)
    assert response.status_code == 200, response.text
    assert not response.content or response.json().get("response_action") is None
    [reply] = await slack.commands(1)
    assert isinstance(reply, AgentReply)
    assert (reply.ticket_id, reply.agent_id, reply.text) == (TICKET, "ana", "It works again, sorry!")
    # Where the modal was opened, so that a refusal is shown in the card's thread.
    assert reply.origin == SlackOrigin(user_id=ANA, channel_id=TEAM_CHANNEL, thread_ts="1700000000.000100")


@pytest.mark.parametrize(
    ("slack", "told", "call_title"),
    [
        (
            None,
            [
                "There is no ticket SB-1042.",
                "This button names no article; nothing was done.",
                "This button names no ticket ('nope'); nothing was done.",
            ],
            "Log a phone call",
        ),
        (
            "zh-Hans",
            [
                "没有工单 SB-1042。",
                "此按钮没有指向任何文章；未执行任何操作。",
                "此按钮没有指向任何工单（'nope'）；未执行任何操作。",
            ],
            "记录电话",
        ),
    ],
    ids=["en", "zh-Hans"],
    indirect=["slack"],
)
async def test_button_refusals_and_the_call_modal_are_in_the_team_s_language(slack, slack_api, told, call_title):
    reassign = button("sb_reassign", ANA, trigger_id=slack_api.issue_trigger_id())
    assert (await slack.interact(reassign)).status_code == 200
    assert (await slack.interact(button("sb_send_article", ANA, value="nonsense"))).status_code == 200
    assert (await slack.interact(button("sb_claim", ANA, value="nope"))).status_code == 200
    assert [call.args["text"] for call in slack_api.calls_to("chat.postEphemeral")] == told
    assert (await slack.slash(ANA, "call", trigger_id=slack_api.issue_trigger_id())).status_code == 200
    [opened] = slack_api.calls_to("views.open")
    assert opened.ok, opened.response
    assert opened.response["view"]["title"]["text"] == call_title
    assert await slack.no_commands()


async def test_an_empty_reply_answers_errors_and_publishes_nothing(slack):
    values = {"text": {"text": {"type": "plain_text_input", "value": "   \n "}}}
    response = await slack.interact(submission("sb_reply_modal", ANA, values))
    assert response.status_code == 200
    assert response.json()["response_action"] == "errors"
    assert set(response.json()["errors"]) == {"text"}
    assert await slack.no_commands()


async def test_the_reassign_modal_offers_the_team_s_agents_and_the_teams(slack, slack_api):
    await slack.redis.hset(ticket_key(TICKET), mapping={"id": TICKET, "team": "support"})
    await slack.interact(button("sb_reassign", ANA, trigger_id=slack_api.issue_trigger_id()))
    [opened] = slack_api.calls_to("views.open")
    options = [option["value"] for option in opened.response["view"]["blocks"][0]["element"]["options"]]
    assert options == ["agent:ana", "agent:ben", "agent:chloe", "agent:lena", "team:support", "team:payments"]


async def test_an_agent_s_thread_reply_is_a_reply_and_a_note_stays_a_note(slack):
    card_ts = next_ts()
    await remember_conversation(slack.redis, [f"slack:{TEAM_CHANNEL}:{card_ts}"], TICKET)
    reply = {"type": "message", "channel": TEAM_CHANNEL, "user": ANA, "text": "On it &amp; fixed", "ts": next_ts()}
    note = {"type": "message", "channel": TEAM_CHANNEL, "user": ANA, "text": "NOTE:  refund approved", "ts": next_ts()}
    for message in (reply, note):
        assert (await slack.event({**message, "thread_ts": card_ts})).status_code == 200

    commands = await slack.commands(2)
    [answer] = [command for command in commands if isinstance(command, AgentReply)]
    [kept] = [command for command in commands if isinstance(command, AgentNote)]
    assert (answer.ticket_id, answer.agent_id, answer.text) == (TICKET, "ana", "On it & fixed")
    assert answer.origin.message_ts == reply["ts"] and answer.origin.thread_ts == card_ts
    assert kept.text == "refund approved" and kept.origin.message_ts == note["ts"]


@pytest.mark.parametrize(
    "fields",
    [
        {"user": STRANGER},
        {"user": ANA, "thread_ts": None},
        {"user": ANA, "bot_id": "B0OTHER"},
        {"user": ANA, "thread_ts": "1600000000.000001"},  # a thread that is no ticket's
    ],
    ids=["not-an-agent", "top-level", "bot", "unknown-thread"],
)
async def test_other_team_channel_messages_publish_nothing(slack, fields):
    card_ts = next_ts()
    await remember_conversation(slack.redis, [f"slack:{TEAM_CHANNEL}:{card_ts}"], TICKET)
    message = {"type": "message", "channel": TEAM_CHANNEL, "text": "hello", "ts": next_ts(), "thread_ts": card_ts}
    message = {key: value for key, value in {**message, **fields}.items() if value is not None}
    assert (await slack.event(message)).status_code == 200
    assert await slack.no_commands()


async def test_sb_away_publishes_the_availability_change_and_applies_it(slack):
    response = await slack.slash(BEN, "away", trigger_id="777.1.away")
    assert response.status_code == 200
    assert response.json()["response_type"] == "ephemeral" and "away" in response.json()["text"]
    [record] = await read_topic(slack.settings.kafka_bootstrap, slack.topic(AGENTS), at_least=1)
    change = AgentAvailabilityChanged.model_validate_json(record.value)
    assert record.key == b"ben" and change.agent_id == "ben" and change.available is False
    assert await Availability(slack.redis).available(["ben", "ana"]) == {"ben": False, "ana": True}


async def test_sb_mine_lists_the_agent_s_tickets(slack):
    for number, priority in ((1001, "normal"), (1002, "urgent")):
        ticket = f"SB-{number}"
        await slack.redis.hset(
            ticket_key(ticket),
            mapping={"id": ticket, "subject": f"Issue <{number}>", "status": "open", "priority": priority},
        )
        await slack.redis.sadd(agent_tickets_key("ana"), ticket)
    response = await slack.slash(ANA, "mine")
    answer = response.json()
    assert answer["response_type"] == "ephemeral"
    lines = answer["text"].splitlines()
    assert lines[1:] == [
        "• `SB-1002` Issue &lt;1002&gt; — open, urgent",
        "• `SB-1001` Issue &lt;1001&gt; — open, normal",
    ]


async def test_sb_refuses_a_non_agent(slack):
    response = await slack.slash(STRANGER, "mine")
    assert response.status_code == 200
    assert "Only Switchboard agents" in response.json()["text"]
    assert await topic_size(slack.settings.kafka_bootstrap, slack.topic(AGENTS)) == 0


async def test_sb_show_and_queue_answer_from_the_read_model(slack):
    await slack.redis.hset(
        ticket_key(TICKET),
        mapping={
            "id": TICKET,
            "subject": "Refund",
            "status": "open",
            "priority": "high",
            "team": "support",
            "channel": "email",
            "created_at": "2026-12-01T10:00:00+00:00",
            "contact_id": "c-1",
            "tags": "[]",
        },
    )
    await slack.redis.hset("sb:contact:c-1", mapping={"id": "c-1", "name": "María López"})
    await slack.redis.sadd(team_queue_key("support"), TICKET)

    shown = (await slack.slash(ANA, "show sb-1042")).json()["text"]
    assert shown.splitlines()[0] == f"*{TICKET}* Refund"
    assert "Assignee: nobody (in the team's queue)" in shown and "Contact: María López" in shown
    queue = (await slack.slash(ANA, "queue")).json()["text"]
    # Ana is in two teams (support and payments): one block per team, payments' empty.
    assert queue.splitlines()[:3] == ["*Customer Support: unassigned* (1)", f"• `{TICKET}` Refund — open, high", ""]
    assert queue.splitlines()[-1] == "Nothing waits."
    assert (await slack.slash(ANA, "show SB-9999")).json()["text"] == "There is no ticket SB-9999."
    assert (await slack.slash(ANA, "dance")).json()["text"].startswith("`/sb dance` is not")


SHARED_CHANNEL = "C0SHARED"  # a Slack Connect channel with a customer


def csat_button(value: str, thread_ts: str, channel: str = SHARED_CHANNEL) -> dict:
    """A click on a CSAT button that the notifier posted in the customer's thread `thread_ts`."""
    pressed = button("sb_csat", STRANGER, value)
    pressed["container"]["channel_id"] = pressed["channel"]["id"] = channel
    pressed["message"]["thread_ts"] = thread_ts
    return pressed


async def test_a_slack_connect_customer_s_csat_button_is_one_rating(slack, slack_api):
    thread_ts = next_ts()
    await remember_conversation(slack.redis, [f"slack:{SHARED_CHANNEL}:{thread_ts}"], TICKET)
    press = csat_button("SB-1042:1:5", thread_ts)
    again = csat_button("SB-1042:1:3", thread_ts)  # a second click on the same request
    assert (await slack.interact(press)).status_code == (await slack.interact(again)).status_code == 200
    first, second = await slack.commands(2)
    assert isinstance(first, RateTicket) and (first.agent_id, first.resolution, first.score) == ("customer", 1, 5)
    # One rating per resolution: the router keeps the first of the two, by their common ID.
    assert first.event_id == second.event_id == derived_id("csat", TICKET, 1)
    assert [call.args["user"] for call in slack_api.calls_to("chat.postEphemeral")] == [STRANGER, STRANGER]


async def test_a_csat_button_rates_only_the_ticket_of_the_thread_it_sits_in(slack, slack_api):
    thread_ts, other_thread = next_ts(), next_ts()
    await remember_conversation(slack.redis, [f"slack:{SHARED_CHANNEL}:{thread_ts}"], TICKET)
    await remember_conversation(slack.redis, [f"slack:{SHARED_CHANNEL}:{other_thread}"], "SB-1043")
    forged = [
        csat_button("SB-1042:1:1", other_thread),  # another customer's thread
        csat_button("SB-1042:1:1", thread_ts, channel="C0ELSEWHERE"),  # a thread of no ticket
        button("sb_csat", STRANGER, "SB-1042:1:1"),  # the team channel's card
    ]
    for pressed in forged:
        assert (await slack.interact(pressed)).status_code == 200
    told = slack_api.calls_to("chat.postEphemeral")
    assert [call.args["text"] for call in told] == ["This rating is not yours to give; nothing was recorded."] * 3
    assert await slack.no_commands()


async def test_a_non_agent_s_modal_submission_is_refused_on_its_field(slack):
    values = {"text": {"text": {"type": "plain_text_input", "value": "let me in"}}}
    response = await slack.interact(submission("sb_note_modal", STRANGER, values))
    assert response.json()["response_action"] == "errors"
    assert "Only Switchboard agents" in response.json()["errors"]["text"]
    assert await slack.no_commands()


async def test_an_agent_is_told_that_files_in_a_thread_reply_are_not_sent(slack, slack_api):
    card_ts = next_ts()
    await remember_conversation(slack.redis, [f"slack:{TEAM_CHANNEL}:{card_ts}"], TICKET)
    shared = {
        "type": "message",
        "subtype": "file_share",
        "channel": TEAM_CHANNEL,
        "user": ANA,
        "text": "See the invoice",
        "ts": next_ts(),
        "thread_ts": card_ts,
        "files": [{"id": "F0INVOICE", "name": "invoice.pdf", "mimetype": "application/pdf"}],
    }
    assert (await slack.event(shared)).status_code == 200
    [reply] = await slack.commands(1)
    assert isinstance(reply, AgentReply) and reply.text == "See the invoice"
    [told] = slack_api.calls_to("chat.postEphemeral")
    assert told.args["user"] == ANA and "invoice.pdf" in told.args["text"]
