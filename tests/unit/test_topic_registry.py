"""The topic registry: every topic has a schema, a key every event carries, a DLQ companion, and example
payloads that validate."""

import json
import typing
from pathlib import Path

import pytest
from aiokafka.errors import InvalidPartitionsError

from shared.topics import REGISTRY, Topics, created_topics

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"


def _event_classes(schema: object) -> tuple[type, ...]:
    union = typing.get_args(schema)[0] if typing.get_origin(schema) is typing.Annotated else schema
    return typing.get_args(union) or (union,)


def _event_types(schema: object) -> set[str]:
    """The `type` values a topic's schema admits."""
    return {member.model_fields["type"].default for member in _event_classes(schema)}


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda spec: spec.name)
def test_every_example_validates_and_every_event_type_has_one(spec):
    adapter = spec.adapter()
    examples = sorted((EXAMPLES / spec.name).glob("*.json"))
    assert examples, f"no examples for {spec.name}"
    seen = {adapter.validate_json(path.read_bytes()).type for path in examples}
    assert seen == _event_types(spec.schema)
    assert adapter.json_schema(), "the schema exports as JSON Schema"


@pytest.mark.parametrize("spec", REGISTRY, ids=lambda spec: spec.name)
def test_examples_are_rejected_when_broken(spec):
    path = sorted((EXAMPLES / spec.name).glob("*.json"))[0]
    broken = {**json.loads(path.read_text()), spec.key: "not an id"}
    with pytest.raises(ValueError):
        spec.adapter().validate_python(broken)


def test_topic_names_are_versioned_keyed_by_a_field_of_every_event_and_have_dead_letter_companions():
    topics = Topics(prefix="staging.")
    for spec in REGISTRY:
        assert spec.name.endswith(".v1") and spec.key in (
            "ticket_id",
            "identity",
            "message_id",
            "agent_id",
            "open_kfid",
            "slug",
            "day",
        )
        assert all(spec.key in event.model_fields for event in _event_classes(spec.schema))
        assert topics.dlq(spec) == f"staging.{spec.name}.dlq"
    assert len(topics.all_names()) == 2 * len(REGISTRY)


def test_a_topic_the_broker_says_already_exists_is_not_reported_created_and_other_failures_raise():
    # CreateTopicsResponse v1+: (name, error code, message); 36 = TOPIC_ALREADY_EXISTS, 37 = INVALID_PARTITIONS.
    assert created_topics([("a", 0, None), ("b", 36, "exists"), ("c", 0, None)]) == (["a", "c"], ["b"])
    assert created_topics([("a", 0)]) == (["a"], [])
    with pytest.raises(InvalidPartitionsError, match="creating topic b"):
        created_topics([("a", 0, None), ("b", 37, "bad partitions")])
