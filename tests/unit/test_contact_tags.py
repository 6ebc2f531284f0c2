"""Contact tags: the router's decision of `command.tag_contact`, new tickets carrying their contact's tags,
the `contact_tag` rule condition and SLA policies matching `when: {contact_tag: [...]}`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from services.router.contact_store import parse_graph
from services.router.contacts import ContactGraph, ContactRecord
from services.router.decide import RouterView, decide_command, decide_inbound
from services.sla.decide import decide, ticket_sla_adapter
from shared.config import DeskConfig, load_config
from shared.events import (
    CommandRejected,
    ContactSummary,
    ContactTagsChanged,
    InboundMessage,
    Sender,
    SlaDeadlineSet,
    TagContact,
    TicketCreated,
)
from shared.read_model import contact_key, projection
from shared.rules import ContactTag, Facts, RuleConditions
from shared.settings import EXAMPLE_CONFIG
from switchboard.explain import print_explanation

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TAGS = ["vip", "trial", "enterprise", "churn-risk"]


def tagged_config() -> DeskConfig:
    """The example config plus a rule and an SLA policy for contacts tagged vip."""
    data = load_config(EXAMPLE_CONFIG).model_dump(by_alias=True)
    data["rules"].insert(0, {"name": "vip first", "when": {"contact_tag": ["VIP"]}, "set": {"priority": "high"}})
    data["sla_policies"].insert(0, {"id": "vip", "when": {"contact_tag": ["vip", "gold"]}, "first_response": "15m"})
    return DeskConfig.model_validate(data)


CONFIG = tagged_config()


def tag(contact_id: str = "c_one", add=(), remove=(), agent_id: str = "admin", **fields) -> TagContact:
    return TagContact(
        event_id=fields.pop("event_id", uuid.uuid4()),
        occurred_at=NOW,
        agent_id=agent_id,
        contact_id=contact_id,
        add=list(add),
        remove=list(remove),
        **fields,
    )


def two_contacts() -> RouterView:
    """c_two merged into c_one, which has tags of its own; c_two had its own before the merge."""
    graph = ContactGraph(
        parents={"c_two": "c_one"},
        contacts={
            "c_one": ContactRecord(
                identities=frozenset({"email:ana@example.com"}), created=1, tags=frozenset({"trial"})
            ),
            "c_two": ContactRecord(identities=frozenset({"telegram:8"}), created=2, tags=frozenset({"old"})),
        },
    )
    return RouterView(graph=graph, owners={"email:ana@example.com": "c_one"})


def test_a_tag_command_changes_the_survivor_s_tags_and_says_what_changed():
    view = two_contacts()

    [changed] = decide_command(tag("c_two", add=["VIP"], remove=["trial"]), view, CONFIG, NOW).events

    assert isinstance(changed, ContactTagsChanged)
    assert changed.contact_id == "c_one", "a merged contact's tags are its survivor's"
    assert (changed.tags, changed.added, changed.removed, changed.actor) == (["vip"], ["vip"], ["trial"], "admin")
    view.absorb([changed])
    assert view.graph.tags("c_two") == view.graph.tags("c_one") == {"vip"}
    view.graph.parents.pop("c_two")
    assert view.graph.tags("c_two") == {"old"}, "unmerged, it has its own tags back"


def test_a_repeated_tag_command_decides_the_same_event_and_nothing_once_applied():
    view = two_contacts()
    command = tag(add=["vip"])

    first = decide_command(command, view, CONFIG, NOW).events
    assert first == decide_command(command, view, CONFIG, NOW).events, "idempotent by command ID"
    view.absorb(first)
    assert decide_command(command, view, CONFIG, NOW).events == []


@pytest.mark.parametrize(
    ("fields", "reason"),
    [({"agent_id": "mallory"}, "not configured"), ({"contact_id": "c_nobody"}, "there is no contact c_nobody")],
)
def test_a_refused_tag_command_is_rejected_on_the_ticket_it_came_from_and_dropped_without_one(fields, reason):
    command = tag(add=["vip"], **fields)
    assert decide_command(command, two_contacts(), CONFIG, NOW).events == []

    [rejection] = decide_command(
        command.model_copy(update={"ticket_id": "SB-1001"}), two_contacts(), CONFIG, NOW
    ).events

    assert isinstance(rejection, CommandRejected) and reason in rejection.reason
    assert rejection.command_type == "command.tag_contact"


@given(st.lists(st.tuples(st.lists(st.sampled_from(TAGS)), st.lists(st.sampled_from(TAGS))), max_size=8))
def test_any_tag_commands_leave_the_tags_set_arithmetic_says(steps):
    view, expected = two_contacts(), {"trial"}
    for add, remove in steps:
        view.absorb(decide_command(tag(add=add, remove=remove), view, CONFIG, NOW).events)
        expected = (expected | set(add)) - set(remove)
    assert view.graph.tags("c_one") == expected


def test_tags_are_lower_case_words():
    assert tag(add=["VIP"]).add == ["vip"]
    with pytest.raises(ValueError):
        tag(add=["two words"])


def mail(ticket_id: str = "SB-1001") -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id=ticket_id,
        received_at=NOW,
        channel="email",
        channel_message_id=f"<{uuid.uuid4()}@mail.example>",
        source="smtp",
        sender=Sender(email="ana@example.com"),
        subject="Invoice",
        text="Where is my invoice?",
    )


def test_a_new_ticket_carries_its_contact_s_tags_and_a_contact_tag_rule_fires():
    view = two_contacts()
    view.absorb(decide_command(tag(add=["vip"]), view, CONFIG, NOW).events)

    created = decide_inbound(mail(), view, CONFIG, NOW).events[0]

    assert isinstance(created, TicketCreated) and created.contact.contact_id == "c_one"
    assert created.contact_tags == ["trial", "vip"]
    assert created.rules == ["vip first"] and created.priority == "high"


def test_a_contact_without_the_tag_is_not_matched():
    created = decide_inbound(mail(), two_contacts(), CONFIG, NOW).events[0]
    assert created.contact_tags == ["trial"] and "vip first" not in created.rules


def test_the_contact_tag_condition_holds_on_any_tag_and_says_what_it_saw():
    facts = Facts("email", "smtp", frozenset(), None, "", "", False, "en", False, False)
    [condition] = RuleConditions(contact_tag="VIP").conditions
    assert condition == ContactTag(frozenset({"vip"}))
    assert not condition.check(facts)
    assert condition.describe(facts) == "contact tags [no tags]: none of [vip]"
    facts = Facts(
        "email", "smtp", frozenset(), None, "", "", False, "en", False, False, contact_tags=frozenset({"a", "vip"})
    )
    assert condition.check(facts)
    assert condition.describe(facts) == "contact tags [a, vip]: one of [vip]"


def test_sla_policies_match_the_contact_s_tags():
    facts = {"priority": "normal", "channel": "email", "team": "support", "category": "general"}
    assert CONFIG.sla_policy_for(**facts, contact_tags=["gold"]).id == "vip"
    assert CONFIG.sla_policy_for(**facts, contact_tags=["trial"]).id == "standard"
    assert CONFIG.sla_policy_for(**facts).id == "standard"
    assert not CONFIG.sla_policy("vip").matches(**{**facts, "priority": "urgent"})


def created_event(contact_tags: list[str]) -> TicketCreated:
    return TicketCreated(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        ticket_id="SB-1001",
        channel="email",
        subject="Invoice",
        contact=ContactSummary(contact_id="c_one"),
        team="support",
        category="general",
        priority="normal",
        contact_tags=contact_tags,
    )


def test_the_sla_service_gives_a_vip_contact_s_ticket_the_vip_policy_and_keeps_its_tags():
    decision = decide([created_event(["vip"])], {}, CONFIG)

    [deadline] = [event for event in decision.events if isinstance(event, SlaDeadlineSet)]
    assert (deadline.policy, deadline.metric, deadline.target_seconds) == ("vip", "first_response", 900)
    state = decision.states["SB-1001"]
    assert state is not None and state.contact_tags == ("vip",)
    assert ticket_sla_adapter.validate_json(ticket_sla_adapter.dump_json(state)) == state


def test_an_sla_state_stored_before_contact_tags_still_loads():
    state = decide([created_event([])], {}, CONFIG).states["SB-1001"]
    stored = json.loads(ticket_sla_adapter.dump_json(state))
    del stored["contact_tags"]
    assert ticket_sla_adapter.validate_python(stored) == state


def test_tags_are_projected_into_the_contact_hash_and_read_back_into_the_graph():
    event = ContactTagsChanged(
        event_id=uuid.uuid4(), occurred_at=NOW, contact_id="c_one", tags=["trial", "vip"], added=["vip"], actor="ana"
    )
    assert projection(event) == ["", "", ["HSET", contact_key("c_one"), "tags", '["trial","vip"]']]
    raw = json.dumps({"contacts": {"c_one": [False, ["email:a@b.c"], [], ["SB-1"], "5", '["trial","vip"]', {}]}})
    assert parse_graph(raw).tags("c_one") == {"trial", "vip"}


def test_route_explain_says_which_contact_tags_a_rule_saw():
    console = Console(record=True, width=250)

    print_explanation(mail(), CONFIG, console, owners={"email:ana@example.com": "c_one"}, contact_tags=["vip"])

    shown = console.export_text()
    assert "contact tags [vip]: one of [vip]" in shown
    assert any("vip first" in line and "fired" in line for line in shown.splitlines())
