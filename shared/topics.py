"""The topic registry: every topic Switchboard uses, its key, partitions, schema and DLQ companion."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import get_args

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code
from pydantic import TypeAdapter

from shared.events import (
    AgentCommand,
    AgentEvent,
    ArticleEvent,
    ContactEvent,
    InboundMessage,
    QuarantineEvent,
    ReportEvent,
    TicketEvent,
    WecomEvent,
)

logger = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"
# Kafka is the source of truth and `switchboard replay` reads every topic from its start: a broker's
# default retention (7 days) would silently drop the older history. Topic-level settings, so that
# they hold on any cluster whatever its broker defaults.
KEEP_FOREVER: tuple[tuple[str, str], ...] = (("retention.ms", "-1"), ("retention.bytes", "-1"))
# Only the latest record per key matters (each carries the whole state for its key).
LATEST_PER_KEY: tuple[tuple[str, str], ...] = (("cleanup.policy", "compact"),)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    key: str
    partitions: int
    schema: object
    description: str
    # Topic-level configs (Kafka's names and values) the topic is created with and kept at; its DLQ keeps
    # everything forever.
    configs: tuple[tuple[str, str], ...] = KEEP_FOREVER

    def adapter(self) -> TypeAdapter:
        return TypeAdapter(self.schema)

    def event_types(self) -> frozenset[str]:
        """The `type` of every event this topic's schema knows ("ticket.created", ...)."""
        return frozenset(
            model.model_fields["type"].default for model in _models_of(self.schema) if "type" in model.model_fields
        )


def _models_of(schema: object) -> list[type]:
    if isinstance(schema, type):
        return [schema]
    return [model for member in get_args(schema) for model in _models_of(member)]


INBOUND = TopicSpec(
    name="switchboard.inbound.v1",
    key="ticket_id",
    partitions=8,
    schema=InboundMessage,
    description="Customer messages from every channel, normalised by intake.",
)
TICKETS = TopicSpec(
    name="switchboard.tickets.v1",
    key="ticket_id",
    partitions=8,
    schema=TicketEvent,
    description="Every change of every ticket, in order per ticket: the audit trail.",
)
COMMANDS = TopicSpec(
    name="switchboard.commands.v1",
    key="ticket_id",
    partitions=8,
    schema=AgentCommand,
    description=(
        "What agents ask to happen to a ticket (reply, note, claim, assign, status, priority, tags,"
        " escalate, merge) and customers' ratings, and merges, unmerges and tag changes of contacts (keyed"
        " by the merged or tagged contact's ID when no ticket is named); the router validates and applies them."
    ),
)
CONTACTS = TopicSpec(
    name="switchboard.contacts.v1",
    key="identity",
    partitions=8,
    schema=ContactEvent,
    description=(
        "Links of identities to contacts and undeliverable addresses, in order per identity; contact merges"
        " and unmerges, keyed by the merged contact's ID; contact tag changes, keyed by the contact's ID."
    ),
)
QUARANTINE = TopicSpec(
    name="switchboard.quarantine.v1",
    key="message_id",
    partitions=8,
    schema=QuarantineEvent,
    description=(
        "Input kept aside instead of reaching a ticket (machine mail for no ticket, loops, spam), with why;"
        " and releases of kept messages into tickets."
    ),
)
AGENTS = TopicSpec(
    name="switchboard.agents.v1",
    key="agent_id",
    partitions=8,
    schema=AgentEvent,
    description="Agents' availability (away, back), in order per agent; assignment reads it.",
)
ARTICLES = TopicSpec(
    name="switchboard.articles.v1",
    key="slug",
    partitions=1,
    schema=ArticleEvent,
    description=(
        "Knowledge-base articles as published and removed, each event carrying the whole article: the"
        " source of truth of the help centre, the search index and the router's suggestions."
    ),
    configs=LATEST_PER_KEY,
)
WECOM = TopicSpec(
    name="switchboard.wecom.v1",
    key="open_kfid",
    # A record per page of WeChat messages taken: one partition keeps them in order, and is plenty.
    partitions=1,
    schema=WecomEvent,
    description="How far intake has taken each WeChat Customer Service account's messages (kf/sync_msg cursors).",
)
REPORTS = TopicSpec(
    name="switchboard.reports.v1",
    key="day",
    partitions=1,
    schema=ReportEvent,
    description="Report digests posted to Slack, one a day (config reports.digest), keyed by the day.",
)
REGISTRY: tuple[TopicSpec, ...] = (INBOUND, TICKETS, COMMANDS, CONTACTS, QUARANTINE, AGENTS, WECOM, ARTICLES, REPORTS)


@dataclass(frozen=True)
class Subscription:
    """What a consumer service reads (in its consumer group) and writes: its code and its docs use it."""

    service: str
    group_id: str
    consumes: tuple[TopicSpec, ...]
    publishes: tuple[TopicSpec, ...]


class Topics:
    """Topic names as one deployment sees them (an optional prefix isolates stacks sharing a cluster)."""

    def __init__(self, prefix: str = ""):
        self.prefix = prefix

    def name(self, spec: TopicSpec) -> str:
        return f"{self.prefix}{spec.name}"

    def group(self, group_id: str) -> str:
        """A consumer group's name in this deployment: stacks sharing a cluster must not share (and
        rebalance) each other's groups."""
        return f"{self.prefix}{group_id}"

    def dlq(self, spec_or_name: TopicSpec | str) -> str:
        name = self.name(spec_or_name) if isinstance(spec_or_name, TopicSpec) else spec_or_name
        return f"{name}{DLQ_SUFFIX}"

    def all_names(self) -> list[str]:
        return [name for spec in REGISTRY for name in (self.name(spec), self.dlq(spec))]


async def ensure_topics(bootstrap: str, topics: Topics) -> list[str]:
    """Create every registered topic and its DLQ if missing, with their configs (`TopicSpec.configs`);
    an existing topic whose configs differ is altered to them (Kafka's AlterConfigs replaces the topic's
    own settings). Returns the names it created."""
    # Each topic's partitions and configs; a DLQ keeps everything forever, whatever its topic does.
    wanted = {
        name: (spec.partitions, dict(configs))
        for spec in REGISTRY
        for name, configs in ((topics.name(spec), spec.configs), (topics.dlq(spec), KEEP_FOREVER))
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        created: list[str] = []
        missing = [name for name in wanted if name not in existing]
        if missing:
            response = await admin.create_topics(
                [
                    NewTopic(name, num_partitions=wanted[name][0], replication_factor=1, topic_configs=wanted[name][1])
                    for name in missing
                ]
            )
            created, already = created_topics(response.topic_errors)
            existing.update(already)
        await _align_configs(admin, {name: configs for name, (_, configs) in wanted.items() if name in existing})
        return created
    finally:
        await admin.close()


def created_topics(topic_errors: list[tuple]) -> tuple[list[str], list[str]]:
    """Splits a CreateTopics answer's per-topic results, `(name, error code[, message])` (Kafka protocol,
    CreateTopicsResponse), into (created, already existing). A topic that "already exists" was made by another
    process, or is one the broker had not listed yet (its metadata trails the controller by a moment): either
    way it is an existing topic whose configs are then checked. Raises the Kafka error of any other failure."""
    created, already = [], []
    for name, code, *message in topic_errors:
        if code == TopicAlreadyExistsError.errno:
            already.append(name)
        elif code:
            raise for_code(code)(f"creating topic {name}: {message[0] if message else ''}")
        else:
            created.append(name)
    return created, already


async def _align_configs(admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]]) -> None:
    """Alters the topics among `wanted` whose configs differ from what is wanted of them (topics made by an
    earlier version, or by hand)."""
    if not wanted:
        return
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name, configs) for name, configs in wanted.items()]
    )
    differing = []
    for response in responses:
        # DescribeConfigsResponse resources: (error code, message, type, name, [(config name, value, ...)]).
        for _code, _message, _kind, name, entries, *_ in response.resources:
            current = {entry[0]: entry[1] for entry in entries}
            if name in wanted and any(current.get(key) != value for key, value in wanted[name].items()):
                differing.append(name)
    if differing:
        logger.warning("setting the configs of existing topics", extra={"topics": differing})
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, wanted[name]) for name in differing])


async def partitions_of(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The topic's partitions as the cluster describes them now ([] when the topic does not exist)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"]:
        return []
    return [TopicPartition(topic, partition["partition"]) for partition in described["partitions"]]
