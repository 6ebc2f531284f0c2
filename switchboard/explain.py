"""`switchboard route explain FILE`: how the router would classify a message, with no side effects.

FILE is an `InboundMessage` as JSON (as intake publishes it on the inbound topic) or a `.eml`, read by
the mail intake's own parser. The classification is the router's own code path (`explain`, which
`classify` wraps), and so is the choice of agent (`assignment.choose`), made as if every agent were
available with no ticket (the live loads and availability are in Redis, which this does not read).
With Redis configured it looks up (only reads) whose contact each of the sender's identities is;
nothing is published or stored.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from services.router.assignment import Desk, Need, choose
from services.router.classification import Explanation, explain
from services.router.contacts import sender_identities
from shared.config import DeskConfig
from shared.events import Attachment, InboundMessage, Sender
from shared.settings import Settings
from shared.untrusted import InvalidJson, parse_json_object


class NotAMessage(ValueError):
    """FILE is neither an inbound message as JSON nor a mail."""


def message_from_file(path: Path, config: DeskConfig) -> InboundMessage:
    """The inbound message in `path`; NotAMessage saying why there is none."""
    raw = path.read_bytes()
    if path.suffix.lower() == ".eml":
        return _message_from_mail(raw, config)
    try:
        return InboundMessage.model_validate(parse_json_object(raw))
    except (InvalidJson, ValidationError) as error:
        raise NotAMessage(f"{path}: not an inbound message as JSON (or a .eml): {error}") from None


def _message_from_mail(raw: bytes, config: DeskConfig) -> InboundMessage:
    from services.intake.email.mime import MailUnreadable
    from services.intake.email.reading import read_mail

    try:
        reading = read_mail(raw)
    except MailUnreadable as error:
        raise NotAMessage(f"not mail: {error}") from None
    mail, mail_class = reading.mail, reading.classification.mail_class
    message_id = uuid.uuid5(uuid.NAMESPACE_URL, hashlib.sha256(raw).hexdigest())
    name = mail.sender.name if mail.sender else None
    try:
        sender = Sender(name=name, email=mail.sender.address.strip() if mail.sender else None)
    except ValidationError:
        sender = Sender(name=name)
    return InboundMessage.received(
        message_id=message_id,
        ticket_id=f"{config.ticket_prefix}-0",
        received_at=mail.date or datetime.now(UTC),
        channel="email",
        kind="message" if mail_class == "normal" else mail_class,
        channel_message_id=mail.message_id or message_id.hex,
        source="smtp",
        sender=sender,
        subject=mail.subject,
        text=mail.new_text,
        attachments=[
            Attachment(
                sha256=hashlib.sha256(part.content).hexdigest(),
                filename=part.filename,
                content_type=part.content_type,
                size=len(part.content),
                inline=part.inline,
                content_id=part.content_id,
            )
            for part in mail.attachments
        ],
        to_addresses=[address.address.lower() for address in [*mail.to, *mail.cc][:50]],
        language_hint=(mail.headers.get("content-language") or "")[:64] or None,
    )


def print_explanation(
    message: InboundMessage,
    config: DeskConfig,
    console: Console,
    owners: Mapping[str, str | None] | None = None,
    contact_tags: Sequence[str] = (),
) -> None:
    """`owners`: each of the sender's identities → the contact that owns it now (a merged one: its
    survivor), as Redis has it; None when Redis was not asked. `contact_tags`: that contact's tags
    (`contact_tag` conditions)."""
    if message.kind not in ("message", "edit"):
        console.print(
            f"A {message.kind.replace('_', '-')} opens no ticket: the router records it, never classifies it."
        )
        return
    outcome = explain(message, config, contact_tags=contact_tags)
    console.print(_contact(message, owners))
    console.print(_reading(outcome, config))
    console.print(_rules(outcome))
    console.print(_result(outcome))
    console.print(_assignment(outcome, config))


def _contact(message: InboundMessage, owners: Mapping[str, str | None] | None) -> Table:
    """The sender's identities, proved by the channel or only claimed, and whose contact each is."""
    table = Table(title="Who wrote")
    for column in ("identity", "proved by the channel", "contact"):
        table.add_column(column)
    identities = sender_identities(message.channel, message.sender)
    for identity, verified in identities.items():
        if owners is None:
            owner = "not looked up (no Redis configured)"
        else:
            owner = owners.get(identity) or "nobody yet: linked to the ticket's contact"
        table.add_row(escape(identity), "verified" if verified else "claimed", escape(owner))
    if not identities:
        table.add_row("none", "—", "a new contact")
    known = {owner for owner in (owners or {}).values() if owner}
    if len(known) > 1:
        table.caption = (
            "identities of different contacts: the router merges them when the channel proves them, "
            "else suggests the merge to agents (see README: Contacts and identities)"
        )
    return table


def _reading(outcome: Explanation, config: DeskConfig) -> Table:
    detected = outcome.detected
    table = Table(title="What the message says", show_header=False)
    origin = {"hint": "the channel's hint", "detection": "detected", "default": "the desk's default"}
    table.add_row("language", f"{detected.language} ({origin[detected.language_from]})")
    customer = outcome.classification
    picked = {"picked": "picked on the page", "hint": "the channel's hint", "detection": "the message's language"}
    table.add_row(
        "customer's language",
        f"{customer.customer_language} ({picked.get(customer.customer_language_from or '', 'the desk default')})",
    )
    if not config.reads_sentiment:
        sentiment = "not read: no rule asks for it (detection.always_read_sentiment)"
    elif detected.language != "en":
        sentiment = "not read: English only"
    elif detected.sentiment is None:
        sentiment = "not negative: no negative word"
    else:
        sentiment = f"{detected.sentiment:+.3f}"
    table.add_row("sentiment", f"{sentiment}{' → negative' if detected.negative else ''}")
    table.add_row("urgent", escape(f"yes: {detected.urgent_word!r}") if detected.urgent else "no")
    table.add_row("flags", ", ".join(detected.flags) or "none")
    return table


def _rules(outcome: Explanation) -> Table:
    table = Table(title="Rules, in order")
    for column in ("#", "rule", "fired", "why"):
        table.add_column(column)
    for index, ruling in enumerate(outcome.rulings, start=1):
        if ruling.fired is None:
            fired, why = "—", "not run: an earlier rule stopped the chain"
        else:
            fired = "[green]fired[/]" if ruling.fired else "no"
            why = "; ".join(condition.describe(outcome.facts) for condition in ruling.checked) or "no conditions"
            if ruling.fired and ruling.rule.stop:
                why += "; stop"
        table.add_row(str(index), escape(ruling.rule.name), fired, escape(why))
    if not outcome.rulings:
        table.add_row("", "(the config has no rules)", "", "")
    return table


def _result(outcome: Explanation) -> Table:
    result = outcome.classification
    table = Table(title="The ticket", show_header=False)
    table.add_row("team", escape(result.team))
    table.add_row("category", escape(result.category))
    table.add_row("priority", result.priority)
    table.add_row("tags", ", ".join(result.tags) or "none")
    table.add_row("skills", escape(", ".join(result.skills)) or "none")
    table.add_row("language", result.language or "")
    table.add_row("rules fired", escape(", ".join(result.rules)) or "none")
    return table


def _assignment(outcome: Explanation, config: DeskConfig) -> Table:
    result = outcome.classification
    team = config.team(result.team)
    choice = choose(Need(team.id, tuple(result.skills), result.language), Desk(), config)
    table = Table(
        title=f"Assignment ({team.routing.replace('_', ' ')} in {escape(team.id)})",
        caption="as if every agent were available with no ticket: live loads and away agents are not read",
    )
    for column in ("agent", "eligible", "why not chosen"):
        table.add_column(column)
    for member in team.members:
        if member == choice.agent_id:
            table.add_row(escape(member), "[green]yes[/]", "[green]chosen[/]")
            continue
        why = choice.passed_over[member]
        table.add_row(escape(member), "yes" if member in choice.eligible else "no", escape(why))
    if choice.agent_id is None:
        table.add_row("", "", escape(f"the ticket waits in the queue: {choice.queued_reason}"))
    return table


async def owner_tags(message: InboundMessage, owners: Mapping[str, str | None] | None, settings: Settings) -> list[str]:
    """The tags of the contact owning the sender's strongest identity (the one a new ticket would most
    likely join), read from Redis; [] when nobody owns one or Redis is not configured or reachable."""
    from redis.exceptions import RedisError

    from shared.read_model import ReadModel
    from shared.redis_client import connect_redis

    owner = next((owners[i] for i in sender_identities(message.channel, message.sender) if (owners or {}).get(i)), None)
    if owner is None or not settings.redis_url:
        return []
    redis = connect_redis(settings.redis_url)
    try:
        contact = await ReadModel(redis).contact(owner)
        return list(contact["tags"]) if contact else []
    except (RedisError, OSError):
        return []
    finally:
        await redis.aclose()


async def identity_owners(message: InboundMessage, settings: Settings) -> dict[str, str | None] | None:
    """Whose contact each of the sender's identities is (a merged contact: its survivor), read from Redis;
    None without Redis configured or reachable."""
    from redis.exceptions import RedisError

    from shared.read_model import ReadModel, identity_key
    from shared.redis_client import connect_redis

    if not settings.redis_url:
        return None
    identities = list(sender_identities(message.channel, message.sender))
    redis = connect_redis(settings.redis_url)
    try:
        found = await redis.mget([identity_key(identity) for identity in identities]) if identities else []
        read_model = ReadModel(redis)
        return {
            identity: await read_model.survivor(owner) if owner else None
            for identity, owner in zip(identities, found, strict=True)
        }
    except (RedisError, OSError):
        return None
    finally:
        await redis.aclose()
