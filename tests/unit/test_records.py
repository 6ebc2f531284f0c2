"""Fitting inbound messages into one Kafka record: whatever the size, under the limit, nothing lost."""

from __future__ import annotations

import inspect
import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.intake.records import EXCERPT_CHARS, FIELD_CHARS, MAX_RECORD_BYTES, fit_to_record, record_size
from services.router.tickets import message_added
from shared.attachments import AttachmentStore
from shared.events import Attachment, InboundMessage, ReplyRoute, Sender

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "switchboard.inbound.v1" / "email-message.json"
MESSAGE = InboundMessage.model_validate_json(EXAMPLE.read_bytes())
# Characters whose JSON is 1, 2, 3, 4 and 6 bytes long: sizes must be measured, not counted.
WIDTHS = st.sampled_from(["a", "é", "注", "😀", "\x01", '"'])


@pytest.fixture(scope="module")
def store() -> AttachmentStore:
    with tempfile.TemporaryDirectory() as root:
        yield AttachmentStore(Path(root))


def excerpt_of(text: str) -> str:
    """The text before the notes fit_to_record appends (a blank line, then lines in brackets)."""
    head, separator, _ = text.rpartition("\n\n[")
    return head if separator else ("" if text.startswith("[") else text)


def kept(store: AttachmentStore, message: InboundMessage, filename: str) -> bytes:
    [attachment] = [attachment for attachment in message.attachments if attachment.filename == filename]
    return store.read(attachment)


def test_a_message_that_fits_is_left_alone(store):
    assert fit_to_record(MESSAGE, store) is MESSAGE


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=6000), limit=st.integers(min_value=4096, max_value=16384))
def test_any_text_fits_keeps_a_prefix_and_the_whole_text_is_attached(store, text, limit):
    message = MESSAGE.model_copy(update={"text": text})
    fitted = fit_to_record(message, store, limit)
    assert record_size(fitted) <= limit
    assert text.startswith(excerpt_of(fitted.text))
    if fitted is not message and len(text) > len(excerpt_of(fitted.text)):
        assert kept(store, fitted, "message.txt").decode() == text
        assert "the full text is attached as message.txt" in fitted.text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(char=WIDTHS, size=st.integers(min_value=0, max_value=6_000_000), html=st.booleans())
def test_megabytes_of_text_fit_the_real_limit(store, char, size, html):
    text = (char + "ordinary words ") * (size // 16)
    message = MESSAGE.model_copy(update={"text": text, "html": f"<p>{text}</p>" if html else None})
    fitted = fit_to_record(message, store)
    assert record_size(fitted) <= MAX_RECORD_BYTES
    if fitted is message:
        return
    excerpt = excerpt_of(fitted.text)
    assert text.startswith(excerpt) and len(excerpt) == min(len(text), EXCERPT_CHARS)
    if len(text) > EXCERPT_CHARS:
        assert kept(store, fitted, "message.txt").decode() == text
    if html:
        assert fitted.html is None and kept(store, fitted, "message.html").decode() == f"<p>{text}</p>"
    assert fitted.attachments[-1] == MESSAGE.attachments[0], "the customer's files stay listed"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    char=WIDTHS,
    field_size=st.integers(min_value=0, max_value=400_000),
    attachments=st.integers(min_value=0, max_value=3000),
    references=st.integers(min_value=0, max_value=3000),
)
def test_huge_header_fields_and_long_lists_fit_too(store, char, field_size, attachments, references):
    long = char * field_size
    files = [
        Attachment(sha256=f"{n:064x}", filename=f"{n}-{long[:500]}.png", content_type="image/png", size=n)
        for n in range(attachments)
    ]
    message = MESSAGE.model_copy(
        update={
            "subject": long,
            "channel_message_id": f"{long}@example.com",
            "sender": Sender(name=long, email="ana@customer.example"),
            "attachments": files,
            "reply_route": ReplyRoute(
                channel="email",
                address="ana@customer.example",
                subject=long,
                references=[f"<{n}@example.com>" for n in range(references)],
            ),
            "bounced_recipients": [f"x{n}@example.com" for n in range(references)],
        }
    )
    fitted = fit_to_record(message, store)
    assert record_size(fitted) <= MAX_RECORD_BYTES
    if fitted is message:
        return
    if long:
        assert len(fitted.subject) <= FIELD_CHARS and long.startswith(fitted.subject.removesuffix("…"))
    moved = {"message.txt", "message.html", "attachments.json"}
    listed = [attachment for attachment in fitted.attachments if attachment.filename not in moved]
    if len(listed) < len(files):
        manifest = json.loads(kept(store, fitted, "attachments.json"))
        assert [entry["sha256"] for entry in manifest] == [file.sha256 for file in files[len(listed) :]]
    if fitted.reply_route.references and references:
        assert fitted.reply_route.references[0] == "<0@example.com>", "the thread's root stays"
        assert fitted.reply_route.references[-1] == f"<{references - 1}@example.com>", "and its latest message"


def test_a_long_identifier_is_replaced_by_its_hash_so_that_an_edit_still_finds_its_original(store):
    original_id = "x" * 2000
    message = MESSAGE.model_copy(
        update={"text": "y" * 1_000_000, "channel_message_id": original_id, "kind": "edit", "edit_of": original_id}
    )
    fitted = fit_to_record(message, store)
    assert fitted.channel_message_id == fitted.edit_of and fitted.channel_message_id.startswith("sha256:")
    assert len(fitted.channel_message_id) == len("sha256:") + 64


def test_the_limit_leaves_room_for_the_ticket_events_made_of_a_message():
    producer_limit = inspect.signature(AIOKafkaProducer).parameters["max_request_size"].default
    assert producer_limit == 1024 * 1024 and MAX_RECORD_BYTES * 4 <= producer_limit
    with tempfile.TemporaryDirectory() as root:
        fitted = fit_to_record(
            MESSAGE.model_copy(update={"text": "\x01" * 3_000_000, "subject": "\x01" * 5000}),
            AttachmentStore(Path(root)),
        )
    added = message_added(fitted, datetime.now(UTC), contact_id="c_0123456789abcdef", review="a note for review")
    assert record_size(added) < producer_limit // 2
