"""The notifier: tells agents in Slack about the work routed to them and about SLA trouble."""

from __future__ import annotations

import logging

from faststream.asgi import AsgiFastStream

from services.notifier.slack import SlackPoster
from services.notifier.slack_text import assignment_dm_text, assignment_text, sla_text
from shared.events import SlaBreached, SlaWarning, TicketAssigned, TicketEvent
from shared.read_model import ticket_key
from shared.service import ConsumerService
from shared.settings import Settings
from shared.topics import TICKETS

logger = logging.getLogger(__name__)

GROUP_ID = "switchboard-notifier"


def create_app(settings: Settings | None = None) -> AsgiFastStream:
    service = ConsumerService("notifier", GROUP_ID, settings)
    settings, config, redis = service.settings, service.config, service.redis
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    slack = SlackPoster(redis, token, settings.slack_api_url)

    def thread_key(ticket_id: str) -> str:
        return f"sb:notifier:thread:{ticket_id}"

    async def on_assigned(event: TicketAssigned) -> None:
        team = config.team(event.team)
        # The team channel's message is the ticket's thread: everything later about it goes there.
        thread_ts = await slack.post(f"{event.event_id}:channel", team.slack_channel, assignment_text(event))
        if thread_ts:
            await redis.set(thread_key(event.ticket_id), thread_ts, nx=True)
        await slack.post(f"{event.event_id}:dm", event.slack_user_id, assignment_dm_text(event))

    async def on_sla(event: SlaWarning | SlaBreached) -> None:
        ticket = await redis.hgetall(ticket_key(event.ticket_id))
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
            thread_ts=await redis.get(thread_key(event.ticket_id)),
        )

    @service.subscriber(TICKETS)
    async def notify(event: TicketEvent) -> None:
        match event:
            case TicketAssigned():
                await on_assigned(event)
            case SlaWarning() | SlaBreached():
                await on_sla(event)

    return service.app()
