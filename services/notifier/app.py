"""The notifier: tells agents in Slack about their work and answers customers on their channel."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from services.notifier.customers import CustomerChannels, TelegramSend
from services.notifier.email_out import EmailSender
from services.notifier.slack import SlackPoster
from services.notifier.slack_text import (
    agent_reply_text,
    assignment_dm_text,
    assignment_text,
    customer_message_text,
    sla_text,
)
from services.notifier.telegram import TelegramSender
from shared.events import MessageAdded, SlaBreached, SlaWarning, TicketAssigned, TicketCreated, TicketEvent
from shared.read_model import ReadModel
from shared.service import ConsumerService
from shared.settings import Settings
from shared.topics import TICKETS

logger = logging.getLogger(__name__)

GROUP_ID = "switchboard-notifier"
HANDLED_TTL_SECONDS = 30 * 24 * 3600


def _thread_key(ticket_id: str) -> str:
    return f"sb:notifier:thread:{ticket_id}"


def _email_sender(settings: Settings, support_addresses: list[str]) -> EmailSender | None:
    mail_from = settings.mail_from or next(iter(support_addresses), None)
    if not settings.smtp_relay_host or not mail_from:
        logger.warning("outbound email is off: set SWITCHBOARD_SMTP_RELAY_HOST and SWITCHBOARD_MAIL_FROM")
        return None
    return EmailSender(settings, mail_from)


def _telegram_sender(settings: Settings) -> TelegramSend | None:
    if not settings.telegram_bot_token:
        logger.warning("Telegram replies are off: SWITCHBOARD_TELEGRAM_BOT_TOKEN is not set")
        return None
    return TelegramSender(settings).send


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    service = ConsumerService("notifier", GROUP_ID, settings)
    settings, config, redis = service.settings, service.config, service.redis
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    slack = SlackPoster(redis, token, settings.slack_api_url)
    support_addresses = [*config.support_addresses, *filter(None, settings.support_addresses.split(","))]
    read_model = ReadModel(redis)
    customers = CustomerChannels(
        config, redis, slack, _email_sender(settings, support_addresses), _telegram_sender(settings)
    )

    async def post_in_thread(key: str, ticket_id: str, team_id: str, text: str) -> None:
        """Into the ticket's thread in the team channel, once the ticket has been announced there."""
        if thread_ts := await redis.get(_thread_key(ticket_id)):
            await slack.post(key, config.team(team_id).slack_channel, text, thread_ts=thread_ts)

    async def on_assigned(event: TicketAssigned) -> None:
        team = config.team(event.team)
        first = await read_model.first_message(event.ticket_id)
        text = assignment_text(event, first["text"] if first else None)
        # The team channel's message is the ticket's thread: everything later about it goes there.
        thread_ts = await slack.post(f"{event.event_id}:channel", team.slack_channel, text)
        if thread_ts:
            await redis.set(_thread_key(event.ticket_id), thread_ts, nx=True)
        await slack.post(f"{event.event_id}:dm", event.slack_user_id, assignment_dm_text(event))

    async def on_message(event: MessageAdded) -> None:
        ticket = await read_model.ticket_fields(event.ticket_id)
        if not ticket:
            return
        if event.author == "agent":
            await customers.deliver_reply(event)
            await post_in_thread(f"{event.event_id}:mirror", event.ticket_id, ticket["team"], agent_reply_text(event))
        elif event.correlation_id != ticket.get("opened_by"):
            # The opening message is quoted in the ticket's announcement; later ones go to its thread.
            await post_in_thread(
                f"{event.event_id}:mirror", event.ticket_id, ticket["team"], customer_message_text(event)
            )

    async def on_sla(event: SlaWarning | SlaBreached) -> None:
        ticket = await read_model.ticket_fields(event.ticket_id)
        if not ticket:
            logger.warning("sla event for an unknown ticket", extra={"ticket_id": event.ticket_id})
            return
        team = config.team(ticket["team"])
        if isinstance(event, SlaBreached) and team.lead:
            mention = config.agent(team.lead).slack_user_id
        else:
            mention = ticket.get("assignee_slack_user_id")
        await slack.post(
            str(event.event_id),
            team.slack_channel,
            sla_text(event, mention),
            thread_ts=await redis.get(_thread_key(event.ticket_id)),
        )

    @service.subscriber(TICKETS)
    async def notify(event: TicketEvent) -> None:
        handled = f"sb:notifier:handled:{event.event_id}"
        # A redelivered event (same ID) may meet a later state, e.g. a thread that now exists.
        if await redis.exists(handled):
            return
        await handle(event)
        await redis.set(handled, "1", ex=HANDLED_TTL_SECONDS)

    async def handle(event: TicketEvent) -> None:
        match event:
            case TicketCreated():
                await customers.acknowledge(event)
            case TicketAssigned():
                await on_assigned(event)
            case MessageAdded():
                await on_message(event)
            case SlaWarning() | SlaBreached():
                await on_sla(event)

    return service.app()
