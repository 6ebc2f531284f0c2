"""The agents' side of `POST /v1/slack/events`: card buttons, modals, thread replies and `/sb`.

Thin Bolt listeners (the decisions live in slack_agents, slack_modals and slack_slash): each
publishes its command on `switchboard.commands.v1` (keyed by ticket ID) or its availability change
on `switchboard.agents.v1` (keyed by agent ID) before Slack gets its answer, within Slack's 3 s; a
failed publish answers 500. A Slack user who is no agent in the config is refused with an
ephemeral message (chat.postEphemeral; a slash command's own answer; a modal's field error) and
nothing is published. The router validates and applies the commands; its refusals reach the agent
through the notifier (`command.rejected`).
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from services.intake.core import PUBLISH_TIMEOUT_SECONDS, Intake
from services.intake.phone_calls import CALL_MODAL, CallInvalid, call_modal, log_call, logged_view, submitted_call
from services.intake.slack_agents import (
    CONTACT_BUTTONS,
    CSAT_BUTTON,
    FILES_NOT_SENT,
    NOT_AN_AGENT,
    NOT_YOUR_RATING,
    Click,
    InputErrors,
    Refused,
    agent_texts,
    button_command,
    click_of,
    contact_button_command,
    is_ticket_id,
    modal_origin,
    rating_command,
    rating_thread,
    submission_of,
    submitted_command,
    team_channels,
    thread_command,
    thread_post,
    ticket_of,
)
from services.intake.slack_modals import ASSIGNEE_BLOCK, MODAL_OF_BUTTON, TEXT_BLOCK, reassign_modal, text_modal
from services.intake.slack_slash import (
    SlashRequest,
    availability_answer,
    contact_targets,
    escape,
    help_answer,
    parse,
    show_target,
    tag_change,
    tag_listing,
    ticket_details,
    ticket_list,
)
from services.knowledge.slack import (
    ARTICLE_MODAL,
    SAVE_ARTICLE_BUTTON,
    SEND_ARTICLE_BUTTON,
    article_modal,
    article_of_button,
    article_reply,
    saved_article,
)
from services.knowledge.store import ArticleStore
from shared import i18n
from shared.agents import Availability
from shared.config import Agent
from shared.contact_commands import contact_command, refusal, tag_command
from shared.conversations import conversation_ticket
from shared.events import (
    AgentAvailabilityChanged,
    CommandEnvelope,
    KeepContactsApart,
    MergeContacts,
    SlackOrigin,
    TagContact,
    UnmergeContacts,
)
from shared.ids import derived_id
from shared.publisher import Outgoing
from shared.read_model import ReadModel, agent_tickets_key, messages_key, team_queue_key, ticket_key
from shared.topics import AGENTS, ARTICLES, COMMANDS, Topics

logger = logging.getLogger(__name__)

_SLACK_FAILURES = (SlackApiError, aiohttp.ClientError, TimeoutError)
# How long where a modal was opened is kept: longer than anyone keeps a modal open.
VIEW_SECONDS = 24 * 3600
_LISTED_FIELDS = ("id", "subject", "status", "priority")


def _view_key(view_id: str) -> str:
    """Where a modal was opened (a SlackOrigin), so that its submission's outcome is shown there."""
    return f"sb:slack:view:{view_id}"


class SlackAgents:
    def __init__(self, intake: Intake):
        self.intake = intake
        self.config = intake.config
        topics = Topics(intake.settings.topic_prefix)
        self.commands_topic = topics.name(COMMANDS)
        self.agents_topic = topics.name(AGENTS)
        self.articles_topic = topics.name(ARTICLES)
        self.articles = ArticleStore(intake.redis)
        self.read_model = ReadModel(intake.redis)
        self.availability = Availability(intake.redis)
        self.team_channels = team_channels(intake.config)

    def register(self, bolt: AsyncApp) -> None:
        bolt.action(re.compile(r"^sb_"))(self.on_action)
        bolt.view(re.compile(r"^sb_\w+_modal$"))(self.on_submission)
        bolt.command("/sb")(self.on_slash_command)

    # --- Card buttons (block_actions) ---------------------------------------------------------------

    async def on_action(self, ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        try:
            click = click_of(body)
        except Refused as refusal:
            logger.warning("Slack block action refused: %s", refusal)
            await ack()
            return
        try:
            await self._act(click, client)
        except Refused as refusal:
            logger.info(
                "Slack button refused: %s",
                refusal,
                extra={"slack_user_id": click.user_id, "action_id": click.action_id, "value": click.value[:100]},
            )
            agent = self.config.agent_by_slack_user(click.user_id)
            told = refusal.text(agent_texts(agent.id if agent else None, self.config))
            await self._tell(client, click.channel_id, click.user_id, told)
        await ack()

    async def _act(self, click: Click, client: AsyncWebClient) -> None:
        now = datetime.now(UTC)
        agent = self.config.agent_by_slack_user(click.user_id)
        if click.action_id == CSAT_BUTTON:
            if agent is not None:
                raise Refused("slack.rating_is_customers")
            rating = rating_command(click, now)
            thread = rating_thread(click)
            if thread is None or await conversation_ticket(self.intake.redis, [thread]) != rating.ticket_id:
                raise Refused(NOT_YOUR_RATING)
            await self._publish(rating)
            # The customer is thanked in their ticket's language.
            locale = await self.intake.redis.hget(ticket_key(rating.ticket_id), "customer_language")
            thanks = i18n.texts(locale or self.config.desk_locale)("slack.rating_recorded", score=rating.score)
            await self._tell(client, click.channel_id, click.user_id, thanks)
            return
        if agent is None:
            raise Refused(NOT_AN_AGENT)
        if click.action_id in CONTACT_BUTTONS:
            change = contact_button_command(click, agent, now)
            await self._publish(change)
            if isinstance(change, KeepContactsApart):
                kept = agent_texts(agent.id, self.config)("slack.contacts_apart")
                await self._tell(client, click.channel_id, click.user_id, kept)
            return
        if click.action_id == SEND_ARTICLE_BUTTON:
            await self._send_article(click, agent, now)
        elif click.action_id == SAVE_ARTICLE_BUTTON:
            await self._open_article_modal(click, client, agent_texts(agent.id, self.config))
        elif click.action_id in MODAL_OF_BUTTON:
            await self._open_modal(click, client, agent_texts(agent.id, self.config))
        else:
            await self._publish(button_command(click, agent, now))

    async def _send_article(self, click: Click, agent: Agent, now: datetime) -> None:
        """Publishes the agent's public reply that sends a suggested article to the customer."""
        named = article_of_button(click.value)
        if named is None or not is_ticket_id(named[0]):
            raise Refused("slack.no_article")
        ticket_id, slug = named
        article = await self.articles.get(slug)
        if article is None:
            raise Refused("slack.article_gone", slug=repr(slug))
        url = f"{self.intake.settings.public_base_url()}/kb/{slug}"
        reply = article_reply(
            article, url, event_id=click.event_id, ticket_id=ticket_id, agent_id=agent.id, origin=click.origin, now=now
        )
        await self._publish(reply)

    async def _open_article_modal(self, click: Click, client: AsyncWebClient, texts: i18n.Texts) -> None:
        """Opens "Save as article" in the agent's language, prefilled with the ticket's subject and language and
        the last public reply."""
        ticket_id = ticket_of(click)
        fields = await self.read_model.ticket_fields(ticket_id)
        if "id" not in fields:
            raise Refused("sb.show.none", ticket_id=ticket_id)
        messages = await self.intake.redis.lrange(messages_key(ticket_id), 0, -1)
        replies = [m for m in map(json.loads, messages) if m.get("author") == "agent" and not m.get("internal")]
        language = json.loads(fields.get("classified") or "{}").get("language") or self.config.languages[0]
        reply = replies[-1]["text"] if replies else ""
        view = article_modal(ticket_id, fields.get("subject") or "", language, reply, texts)
        await self._open_view(click, client, ticket_id, view)

    async def _open_modal(self, click: Click, client: AsyncWebClient, texts: i18n.Texts) -> None:
        ticket_id = ticket_of(click)
        if click.action_id == "sb_reassign":
            team_id = await self.intake.redis.hget(ticket_key(ticket_id), "team")
            if team_id is None:
                raise Refused("sb.show.none", ticket_id=ticket_id)
            team = next((team for team in self.config.teams if team.id == team_id), None)
            view = reassign_modal(ticket_id, team, self.config, texts)
        else:
            view = text_modal("reply" if click.action_id == "sb_reply" else "note", ticket_id, texts)
        await self._open_view(click, client, ticket_id, view)

    async def _open_view(self, click: Click, client: AsyncWebClient, ticket_id: str, view: dict[str, Any]) -> None:
        if click.trigger_id is None:
            raise Refused("slack.no_trigger")
        try:
            opened = await client.views_open(trigger_id=click.trigger_id, view=view)
        except _SLACK_FAILURES as error:
            # A trigger lives 3 s and opens one view: a slow or repeated one cannot be used again.
            logger.warning("views.open failed", extra={"ticket_id": ticket_id, "error": repr(error)})
            raise Refused("slack.form_timeout") from None
        view_id = (opened.get("view") or {}).get("id")
        if isinstance(view_id, str):
            await self.intake.redis.set(_view_key(view_id), modal_origin(click).model_dump_json(), ex=VIEW_SECONDS)

    # --- Modal submissions (view_submission) -------------------------------------------------------

    async def on_submission(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        view = body.get("view")
        if isinstance(view, dict) and view.get("callback_id") == ARTICLE_MODAL:
            await self._on_article_submission(ack, body, view)
            return
        if isinstance(view, dict) and view.get("callback_id") == CALL_MODAL:
            await self._on_call_logged(ack, body, view)
            return
        try:
            submission = submission_of(body)
        except Refused as refusal:
            logger.warning("Slack view submission refused: %s", refusal)
            await ack()
            return
        block = ASSIGNEE_BLOCK if submission.callback_id == MODAL_OF_BUTTON["sb_reassign"] else TEXT_BLOCK
        agent = self.config.agent_by_slack_user(submission.user_id)
        if agent is None:
            await ack(response_action="errors", errors={block: agent_texts(None, self.config)(NOT_AN_AGENT)})
            return
        cached = await self.intake.redis.get(_view_key(submission.view_id))
        opened_from = SlackOrigin.model_validate_json(cached) if cached is not None else None
        try:
            command = submitted_command(submission, agent, self.config, datetime.now(UTC), opened_from)
        except InputErrors as invalid:
            await ack(response_action="errors", errors=invalid.errors)
            return
        await self._publish(command)
        await ack()

    async def _on_article_submission(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Publishes the article of a "Save as article" modal (keyed by slug) and applies it to the knowledge base."""
        user_id = (body.get("user") or {}).get("id")
        agent = self.config.agent_by_slack_user(str(user_id))
        ticket_id = view.get("private_metadata")
        state = view.get("state")
        values = state.get("values") if isinstance(state, dict) else None
        texts = agent_texts(agent.id if agent else None, self.config)
        if agent is None or not isinstance(ticket_id, str) or not is_ticket_id(ticket_id):
            await ack(response_action="errors", errors={"title": texts(NOT_AN_AGENT)})
            return
        found = values if isinstance(values, dict) else {}
        article = saved_article(found, ticket_id, agent.id, datetime.now(UTC), texts)
        if isinstance(article, dict):
            await ack(response_action="errors", errors=article)
            return
        held = await self.articles.get(article.slug)
        if held is not None and held.source == "folder":
            await ack(response_action="errors", errors={"title": texts("modal.article.error.folder")})
            return
        record = Outgoing.event(self.articles_topic, article.slug, article)
        await self.intake.publisher.publish(record, timeout=PUBLISH_TIMEOUT_SECONDS)
        await self.articles.apply([article])
        logger.info(
            "article saved from Slack", extra={"slug": article.slug, "ticket_id": ticket_id, "agent_id": agent.id}
        )
        await ack()

    async def _on_call_logged(self, ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        """A submitted `/sb call` modal: the call becomes a ticket (the same view submitted again, the same
        ticket), and the modal shows its number."""
        user = body.get("user") if isinstance(body.get("user"), dict) else {}
        agent = self.config.agent_by_slack_user(str(user.get("id", "")))
        state = view.get("state") if isinstance(view.get("state"), dict) else {}
        values = state.get("values") if isinstance(state.get("values"), dict) else {}
        if agent is None:
            await ack(response_action="errors", errors={"summary": agent_texts(None, self.config)(NOT_AN_AGENT)})
            return
        texts = agent_texts(agent.id, self.config)
        try:
            call = submitted_call(values, agent.id, datetime.now(UTC), texts)
        except CallInvalid as invalid:
            await ack(response_action="errors", errors=invalid.errors)
            return
        ticket_id = await log_call(self.intake, call, f"slack-view:{view.get('id')}")
        logger.info("phone call logged", extra={"ticket_id": ticket_id, "agent_id": agent.id})
        await ack(response_action="update", view=logged_view(ticket_id, texts))

    # --- Thread replies in team channels -----------------------------------------------------------

    def handles_channel(self, channel: object) -> bool:
        return isinstance(channel, str) and channel in self.team_channels

    async def on_team_message(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        post = thread_post(event, self.config)
        if post is None:
            return
        ticket_id = await conversation_ticket(self.intake.redis, [post.conversation])
        if ticket_id is None:
            logger.info("Slack thread reply ignored: not a ticket's thread", extra={"conversation": post.conversation})
            return
        try:
            command = thread_command(post, ticket_id)
        except Refused as refusal:
            await self._tell(client, post.channel, post.user_id, refusal.text(agent_texts(post.agent.id, self.config)))
            return
        if command is not None:
            await self._publish(command)
        if post.files:
            sender = self.config.agent_by_slack_user(post.user_id)
            untold = agent_texts(sender.id if sender else None, self.config)(
                FILES_NOT_SENT, files=", ".join(post.files)
            )
            await self._tell(client, post.channel, post.user_id, untold)

    # --- The /sb slash command ---------------------------------------------------------------------

    async def on_slash_command(
        self, ack: AsyncAck, command: dict[str, Any], request: AsyncBoltRequest, client: AsyncWebClient
    ) -> None:
        agent = self.config.agent_by_slack_user(str(command.get("user_id", "")))
        if agent is None:
            await ack(text=agent_texts(None, self.config)(NOT_AN_AGENT), response_type="ephemeral")
            return
        slash = parse(str(command.get("text", "")))
        if slash.subcommand == "call":
            problem = await self._open_call_modal(command, client, agent_texts(agent.id, self.config))
            await (ack() if problem is None else ack(text=problem, response_type="ephemeral"))
            return
        answer = await self._answer(slash, agent, command, request)
        await ack(text=answer, response_type="ephemeral")

    async def _answer(
        self, slash: SlashRequest, agent: Agent, command: dict[str, Any], request: AsyncBoltRequest
    ) -> str:
        redis = self.intake.redis
        texts = agent_texts(agent.id, self.config)
        match slash.subcommand:
            case "mine":
                tickets = await self._tickets(await redis.smembers(agent_tickets_key(agent.id)))
                return ticket_list(texts("sb.mine.title"), tickets, empty=texts("sb.mine.empty"), texts=texts)
            case "queue":
                teams = self.config.teams_of(agent.id)
                if not teams:
                    return texts("sb.queue.no_team")
                sections = [
                    ticket_list(
                        texts("sb.queue.title", team=team.name),
                        await self._tickets(await redis.smembers(team_queue_key(team.id))),
                        empty=texts("sb.queue.empty"),
                        texts=texts,
                    )
                    for team in teams
                ]
                return "\n\n".join(sections)
            case "show":
                ticket_id = show_target(slash)
                if ticket_id is None:
                    return texts("sb.show.which")
                fields = await self.read_model.ticket_fields(ticket_id)
                if "id" not in fields:
                    return texts("sb.show.none", ticket_id=ticket_id)
                contact = await self.read_model.contact(fields["contact_id"]) if fields.get("contact_id") else None
                return ticket_details(fields, contact, texts)
            case "away" | "back":
                await self._set_availability(agent, slash.subcommand == "back", command, request)
                return availability_answer(slash.subcommand == "back", texts)
            case "merge" | "unmerge":
                return await self._contact_command(slash, agent, command, texts)
            case "tag":
                return await self._tag_contact(slash, agent, command, texts)
            case _:
                return help_answer(slash, texts)

    async def _open_call_modal(self, command: dict[str, Any], client: AsyncWebClient, texts: i18n.Texts) -> str | None:
        """Opens the call modal for `/sb call` in the agent's language; None when it opened, else what to tell
        the agent."""
        trigger_id = command.get("trigger_id")
        if not isinstance(trigger_id, str) or not trigger_id:
            return texts("sb.call.no_trigger")
        try:
            await client.views_open(trigger_id=trigger_id, view=call_modal(texts))
        except _SLACK_FAILURES as error:
            logger.warning("views.open failed", extra={"error": repr(error)})
            return texts("sb.call.timeout")
        return None

    async def _contact_command(
        self, slash: SlashRequest, agent: Agent, command: dict[str, Any], texts: i18n.Texts
    ) -> str:
        """Publishes `/sb merge` or `/sb unmerge` once the read model says the router would apply it."""
        target = contact_targets(slash)
        if target is None:
            return texts("sb.contacts.which")
        merged, survivor = target
        if (reason := await refusal(self.read_model, merged, survivor)) is not None:
            return texts("sb.contacts.refused", reason=escape(reason.text(texts)))
        trigger = command.get("trigger_id") or f"{agent.id}:{slash.subcommand}:{slash.argument}"
        change = contact_command(derived_id("slack-contacts", trigger), datetime.now(UTC), agent.id, merged, survivor)
        await self._publish(change)
        if survivor is None:
            return texts("sb.contacts.unmerging", merged=merged)
        return texts("sb.contacts.merging", merged=merged, survivor=survivor)

    async def _tag_contact(self, slash: SlashRequest, agent: Agent, command: dict[str, Any], texts: i18n.Texts) -> str:
        """Publishes `/sb tag` once the read model knows the contact (a ticket's: the ticket's contact); the
        router applies it (`contact.tags_changed`), so the answer says what was asked, not the tags after."""
        change = tag_change(slash)
        if change is None:
            return texts("sb.tag.usage")
        if change.invalid:
            return texts("sb.tag.invalid", tags=", ".join(escape(word[:40]) for word in change.invalid))
        contact_id = change.target
        if change.ticket_id is not None:
            contact_id = await self.intake.redis.hget(ticket_key(change.ticket_id), "contact_id")
            if not contact_id:
                return texts("sb.tag.no_ticket", ticket_id=change.ticket_id)
        if (reason := await refusal(self.read_model, contact_id, tagging=True)) is not None:
            return texts("sb.contacts.refused", reason=escape(reason.text(texts)))
        trigger = command.get("trigger_id") or f"{agent.id}:{slash.subcommand}:{slash.argument}"
        tagging = tag_command(
            derived_id("slack-contact-tags", trigger),
            datetime.now(UTC),
            agent.id,
            contact_id,
            change.add,
            change.remove,
        )
        await self._publish(tagging)
        shown = contact_id if change.ticket_id is None else f"{contact_id} ({change.ticket_id})"
        return texts("sb.tag.tagging", contact=shown, changes=tag_listing(change))

    async def _set_availability(
        self, agent: Agent, available: bool, command: dict[str, Any], request: AsyncBoltRequest
    ) -> None:
        # The request's signed timestamp, not our clock: a replayed `/sb away` cannot overrule a later
        # `/sb back` (the projection keeps the latest change).
        timestamp = next(iter(request.headers.get("x-slack-request-timestamp", [])), None)
        at = datetime.fromtimestamp(int(timestamp), UTC) if timestamp and timestamp.isdigit() else datetime.now(UTC)
        trigger = command.get("trigger_id") or f"{agent.id}:{timestamp}"
        change = AgentAvailabilityChanged(
            event_id=derived_id("slack-availability", trigger), occurred_at=at, agent_id=agent.id, available=available
        )
        await self.intake.publisher.publish(
            Outgoing.event(self.agents_topic, agent.id, change), timeout=PUBLISH_TIMEOUT_SECONDS
        )
        await self.availability.apply([change])
        logger.info("agent availability changed", extra={"agent_id": agent.id, "available": available})

    async def _tickets(self, ticket_ids: set[str]) -> list[dict[str, str]]:
        """The listed fields of each ticket that exists."""
        ordered = sorted(ticket_ids)
        async with self.intake.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ordered:
                pipe.hmget(ticket_key(ticket_id), *_LISTED_FIELDS)
            rows = await pipe.execute()
        return [
            {field: value for field, value in zip(_LISTED_FIELDS, row, strict=True) if value is not None}
            for row in rows
            if row[0] is not None
        ]

    # --- Shared -------------------------------------------------------------------------------------

    async def _publish(
        self, command: CommandEnvelope | MergeContacts | UnmergeContacts | TagContact | KeepContactsApart
    ) -> None:
        """Returns once Kafka has the command; raises KafkaTimeoutError (Slack then sees a failure)."""
        # A contact command from `/sb` names no ticket: keyed by its contact (a merge: the merged one), as from the CLI.
        record = Outgoing.event(self.commands_topic, command.ticket_id or getattr(command, "contact_id", ""), command)
        await self.intake.publisher.publish(record, timeout=PUBLISH_TIMEOUT_SECONDS)
        logger.info(
            "agent command published",
            extra={
                "command_id": str(command.event_id),
                "command_type": getattr(command, "type", None),
                "ticket_id": command.ticket_id,
            },
        )

    async def _tell(self, client: AsyncWebClient, channel: str | None, user_id: str, text: str) -> None:
        """An ephemeral message to one person; best effort (it only explains what did or did not happen)."""
        if channel is None:
            logger.info("nowhere to tell a Slack user", extra={"slack_user_id": user_id, "text": text})
            return
        try:
            await client.chat_postEphemeral(channel=channel, user=user_id, text=text)
        except _SLACK_FAILURES as error:
            logger.warning("chat.postEphemeral failed", extra={"slack_user_id": user_id, "error": repr(error)})
