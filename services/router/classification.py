"""Deciding a new ticket's team, category, priority, tags, required skills and language.

The start is the config's default classification (a form bound to a team sends its tickets there); then
detection reads the message (services/router/detection.py) and the config's rules run in order
(shared/rules.py). `explain` keeps every step for `switchboard route explain`; the router uses `classify`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from services.router.customer_language import customer_language
from services.router.detection import Detected, detect
from shared.config import Classification, DeskConfig
from shared.events import InboundMessage
from shared.rules import MATCH_CHARS, Facts, Ruling, run_rules


@dataclass(frozen=True)
class Explanation:
    detected: Detected
    facts: Facts
    rulings: list[Ruling]
    classification: Classification


def classify(message: InboundMessage, config: DeskConfig, *, contact_tags: Iterable[str] = ()) -> Classification:
    return explain(message, config, traced=False, contact_tags=contact_tags).classification


def explain(
    message: InboundMessage, config: DeskConfig, *, traced: bool = True, contact_tags: Iterable[str] = ()
) -> Explanation:
    """Every step of the classification: what detection read, the facts rules saw, each rule's ruling
    (left empty when not `traced`: the router needs only the result), and the classification.
    `contact_tags`: the tags of the sender's contact (`contact_tag` conditions)."""
    default = config.default_classification
    team = default.team
    if message.channel == "form" and (form := config.form(message.source)) and form.team:
        team = form.team
    detected = detect(message, config)
    facts = facts_of(message, detected, config, contact_tags)
    rulings: list[Ruling] = []
    outcome = run_rules(
        config.rules,
        facts,
        team=team,
        category=default.category,
        priority=default.priority,
        tags=default.tags,
        skills=default.skills,
        trace=rulings if traced else None,
    )
    chosen = customer_language(message, detected, outcome.language, config)
    classification = default.model_copy(
        update={
            "customer_language": chosen.locale,
            "customer_language_from": chosen.source,
            "team": outcome.team,
            "category": outcome.category,
            "priority": outcome.priority,
            "tags": list(outcome.tags),
            "skills": list(outcome.skills),
            "language": outcome.language,
            "flags": detected.flags,
            "rules": list(outcome.fired),
        }
    )
    return Explanation(detected, facts, rulings, classification)


def facts_of(
    message: InboundMessage, detected: Detected, config: DeskConfig, contact_tags: Iterable[str] = ()
) -> Facts:
    email = message.sender.email
    return Facts(
        channel=message.channel,
        source=message.source,
        to_addresses=frozenset(address.lower() for address in message.to_addresses),
        contact_domain=email.rpartition("@")[2].lower() if email else None,
        subject=(message.subject or "")[:MATCH_CHARS],
        text=message.text[:MATCH_CHARS],
        # Inline parts (signature logos, pasted screenshots shown in the body) are not files the customer attached.
        has_attachment=any(not attachment.inline for attachment in message.attachments),
        language=detected.language,
        urgent=detected.urgent,
        negative=detected.negative,
        open_calendars=frozenset(
            calendar for calendar in config.rule_calendars if config.calendar(calendar).is_open(message.received_at)
        ),
        contact_tags=frozenset(contact_tags),
    )
