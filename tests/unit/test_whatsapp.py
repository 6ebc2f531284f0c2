"""WhatsApp in pure code: the webhook signature and verify challenge, what each message type becomes
(services.intake.whatsapp_content), the customer-service window (shared.whatsapp_window) and what the
notifier plans inside and outside it."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.intake.ticket_ids import Resolution
from services.intake.whatsapp import status_event, to_inbound
from services.intake.whatsapp_content import (
    CustomerMessage,
    challenge_answer,
    customer_message,
    read_webhook,
    valid_signature,
)
from services.notifier.plan import NotifierView, plan
from services.notifier.whatsapp import split_for_whatsapp
from services.router.contacts import sender_identities
from services.router.decide import RouterView, decide_inbound
from shared.config import load_config
from shared.conversations import whatsapp_conversation
from shared.events import ContactSummary, InboundMessage, MessageAdded, ReplyRoute, Sender, SlackOrigin, TicketCreated
from shared.read_model import history_entry
from shared.settings import EXAMPLE_CONFIG
from shared.whatsapp_graph import Tracking
from shared.whatsapp_window import WINDOW, in_window
from tests.fakes.whatsapp_api import DEFAULT_PHONE_NUMBER_ID, message_webhook, signed, status_webhook

SECRET = "app-secret-0123456789"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
STAMP = int(NOW.timestamp())
CONFIG = load_config(EXAMPLE_CONFIG)


def one_message(message: dict, **fields) -> CustomerMessage:
    read = read_webhook(
        message_webhook("34600123456", message, wamid="wamid.A1", timestamp=STAMP, **fields), DEFAULT_PHONE_NUMBER_ID
    )
    [found] = read.messages
    return found


# --- Signature and verification -----------------------------------------------------------------------


def test_a_webhook_signed_with_the_app_secret_is_valid_and_any_other_is_not():
    body, headers = signed(
        message_webhook("34600123456", {"type": "text", "text": {"body": "hi"}}, wamid="w", timestamp=1), SECRET
    )
    signature = headers["X-Hub-Signature-256"]
    assert valid_signature(body, signature, SECRET)
    assert not valid_signature(body, signature, "another-secret")
    assert not valid_signature(body + b" ", signature, SECRET)
    assert not valid_signature(body, signature.removeprefix("sha256="), SECRET), "the prefix is required"
    assert not valid_signature(body, None, SECRET) and not valid_signature(body, "sha256=", SECRET)
    assert not valid_signature(body, "sha256=ÿÿ", SECRET), "odd header bytes are refused, not an error"


@given(st.binary(max_size=2000), st.binary(min_size=1, max_size=50))
def test_only_the_exact_body_matches_its_signature(body, tail):
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert valid_signature(body, signature, SECRET)
    assert not valid_signature(body + tail, signature, SECRET)


def test_the_verify_challenge_is_echoed_only_for_a_subscription_with_our_token():
    ok = {"hub.mode": "subscribe", "hub.verify_token": "tok", "hub.challenge": "1158201444"}
    assert challenge_answer(ok, "tok") == "1158201444"
    assert challenge_answer({**ok, "hub.verify_token": "nope"}, "tok") is None
    assert challenge_answer({**ok, "hub.mode": "unsubscribe"}, "tok") is None
    assert challenge_answer({"hub.mode": "subscribe", "hub.verify_token": "tok"}, "tok") is None


# --- Normalisation of each message type ---------------------------------------------------------------


def test_a_text_message_carries_its_sender_as_a_verified_e164_phone():
    message = one_message({"type": "text", "text": {"body": "My order is late"}})
    assert message.text == "My order is late" and message.files == ()
    assert message.wa_id == "34600123456" and message.wamid == "wamid.A1" and message.sent_at == NOW
    assert message.sender.phone == "+34600123456" and message.sender.name == "Ana Pérez"
    assert sender_identities("whatsapp", message.sender) == {"phone:+34600123456": True}
    assert sender_identities("form", message.sender) == {"phone:+34600123456": False}


def test_media_messages_name_their_file_and_keep_the_caption():
    image = one_message({"type": "image", "image": {"id": "1001", "mime_type": "image/jpeg", "caption": "the box"}})
    assert image.text == "the box" and [(f.media_id, f.label, f.content_type) for f in image.files] == [
        ("1001", "image", "image/jpeg")
    ]
    voice = one_message(
        {"type": "audio", "audio": {"id": "1002", "mime_type": "audio/ogg; codecs=opus", "voice": True}}
    )
    assert voice.text == "[voice message]" and voice.files[0].content_type == "audio/ogg; codecs=opus"
    video = one_message({"type": "video", "video": {"id": "1003"}})
    assert video.text == "[video]" and video.files[0].content_type == "video/mp4"
    document = one_message(
        {"type": "document", "document": {"id": "1004", "filename": "invoice.pdf", "mime_type": "application/pdf"}}
    )
    assert document.text == "[document: invoice.pdf]" and document.files[0].filename == "invoice.pdf"
    sticker = one_message({"type": "sticker", "sticker": {"id": "1005", "mime_type": "image/webp", "animated": False}})
    assert sticker.text == "[sticker]" and sticker.files[0].media_id == "1005"


def test_location_contacts_and_interactive_replies_read_as_bracketed_lines():
    location = one_message(
        {"type": "location", "location": {"latitude": 40.4, "longitude": -3.7, "name": "Shop", "address": "Gran Vía 1"}}
    )
    assert location.text == "[location: Shop, Gran Vía 1 (40.4, -3.7)]"
    contacts = one_message(
        {
            "type": "contacts",
            "contacts": [
                {
                    "name": {"formatted_name": "Luis Gómez", "first_name": "Luis"},
                    "phones": [{"phone": "+34 611 22 33 44", "wa_id": "34611223344", "type": "CELL"}],
                    "emails": [{"email": "luis@example.com", "type": "WORK"}],
                }
            ],
        }
    )
    assert contacts.text == "[contact: Luis Gómez, +34 611 22 33 44, luis@example.com]"
    assert contacts.sender.phone == "+34600123456", "a shared contact is not the sender's identity"
    button = one_message(
        {"type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "b1", "title": "Yes"}}}
    )
    assert button.text == "[button: Yes]"
    listed = one_message(
        {
            "type": "interactive",
            "interactive": {
                "type": "list_reply",
                "list_reply": {"id": "r2", "title": "Refund", "description": "Money back"},
            },
        }
    )
    assert listed.text == "[list choice: Refund — Money back]"
    template_button = one_message({"type": "button", "button": {"payload": "STOP", "text": "Stop promotions"}})
    assert template_button.text == "[button: Stop promotions]"


def test_unknown_types_are_carried_as_text_never_dropped():
    reaction = one_message({"type": "reaction", "reaction": {"message_id": "wamid.X", "emoji": "👍"}})
    assert reaction.text == "[reaction 👍 to a message]"
    unsupported = one_message({"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]})
    assert unsupported.text == "[unsupported message: Message type unknown]"
    future = one_message({"type": "hologram", "hologram": {"id": "9"}})
    assert future.text == "[hologram message]"


def test_forwards_and_replies_are_marked():
    message = one_message(
        {
            "type": "text",
            "text": {"body": "see this"},
            "context": {"from": "15550783881", "id": "wamid.OURS", "forwarded": True},
            "forwarded": True,
        }
    )
    assert message.text == "[forwarded message]\nsee this" and message.reply_to == "wamid.OURS"


def test_changes_for_other_numbers_other_fields_and_malformed_messages_are_ignored_with_a_reason():
    other = message_webhook(
        "34600123456", {"type": "text", "text": {"body": "hi"}}, wamid="w", timestamp=STAMP, phone_number_id="999"
    )
    read = read_webhook(other, DEFAULT_PHONE_NUMBER_ID)
    assert read.messages == [] and "phone number ID '999'" in read.ignored[0]
    assert read_webhook({"object": "page"}, DEFAULT_PHONE_NUMBER_ID).ignored
    assert read_webhook([1, 2], DEFAULT_PHONE_NUMBER_ID).ignored
    account = {
        "object": "whatsapp_business_account",
        "entry": [{"changes": [{"field": "account_update", "value": {}}]}],
    }
    assert read_webhook(account, DEFAULT_PHONE_NUMBER_ID).ignored == ["a 'account_update' change"]
    assert isinstance(customer_message({"id": "w", "from": "not-a-number", "timestamp": "1"}, {}), str)


def test_an_inbound_message_answers_on_whatsapp_and_opens_the_window():
    message = one_message({"type": "text", "text": {"body": "hi"}})
    resolution = Resolution("SB-1001", uuid.uuid4(), "whatsapp:message:wamid.A1", ("whatsapp:34600123456",))
    inbound = to_inbound(message, resolution=resolution, attachments=[], refusals=["big.mov is too large"])
    assert inbound.channel == "whatsapp" and inbound.channel_message_id == "wamid.A1"
    assert inbound.text == "hi\n[attachment refused: big.mov is too large]"
    assert inbound.reply_route == ReplyRoute(
        channel="whatsapp", address="34600123456", reply_to_id="wamid.A1", customer_wrote_at=NOW
    )
    # The key of the customer's open ticket (shared/conversations.py): Redis holds keys of this format.
    assert whatsapp_conversation(message.wa_id) == "whatsapp:34600123456"


# --- Statuses ---------------------------------------------------------------------------------------


def test_a_status_of_our_message_becomes_an_event_on_its_ticket_and_its_audit_trail():
    reply_id = uuid.uuid4()
    tracking = Tracking("SB-1001", "reply", str(reply_id)).encode()
    assert Tracking.decode(tracking) == Tracking("SB-1001", "reply", str(reply_id))
    failed = status_webhook(
        "wamid.OUT",
        "failed",
        recipient="34600123456",
        timestamp=STAMP,
        tracking=tracking,
        errors=[{"code": 131047, "title": "Re-engagement message"}],
    )
    [update] = read_webhook(failed, DEFAULT_PHONE_NUMBER_ID).statuses
    event = status_event(update)
    assert event is not None and event.ticket_id == "SB-1001" and event.message_id == reply_id
    assert event.status == "failed" and event.error == "131047 Re-engagement message"
    entry = history_entry(event)
    assert entry["status"] == "failed" and entry["message_id"] == str(reply_id) and entry["external_id"] == "wamid.OUT"
    assert status_event(update).event_id == event.event_id, "a redelivered status is the same event"


def test_statuses_of_messages_we_did_not_send_or_of_unknown_kinds_are_not_recorded():
    foreign = status_webhook("wamid.X", "delivered", recipient="1", timestamp=STAMP)
    [update] = read_webhook(foreign, DEFAULT_PHONE_NUMBER_ID).statuses
    assert status_event(update) is None
    odd = status_webhook("wamid.X", "played", recipient="1", timestamp=STAMP, tracking="SB-1 reply -")
    assert read_webhook(odd, DEFAULT_PHONE_NUMBER_ID).statuses == []
    assert Tracking.decode("not tracking") is None and Tracking.decode(None) is None


# --- The customer-service window -----------------------------------------------------------------------


def test_the_window_lasts_24_hours_from_the_customers_last_message():
    assert in_window(NOW, NOW) and in_window(NOW, NOW + WINDOW - timedelta(seconds=1))
    assert not in_window(NOW, NOW + WINDOW)
    assert not in_window(None, NOW), "no message from the customer: no window"
    assert in_window(NOW + timedelta(minutes=1), NOW), "a little clock skew is tolerated"


@given(st.integers(min_value=-10 * 86400, max_value=10 * 86400))
def test_the_window_is_exactly_the_24_hours_after_the_message_give_or_take_the_skew(offset):
    at = NOW + timedelta(seconds=offset)
    inside = in_window(NOW, at)
    if 0 <= offset < WINDOW.total_seconds():
        assert inside
    elif offset >= WINDOW.total_seconds() or offset < -300:
        assert not inside


ANA = ContactSummary(contact_id="c_1", name="Ana", identities=["phone:+34600123456"])


def route(wrote: datetime | None) -> ReplyRoute:
    return ReplyRoute(channel="whatsapp", address="34600123456", reply_to_id="wamid.A1", customer_wrote_at=wrote)


def created_at(at: datetime, wrote: datetime | None) -> TicketCreated:
    return TicketCreated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ticket_id="SB-1001",
        channel="whatsapp",
        subject=None,
        contact=ANA,
        team="support",
        category="general",
        priority="normal",
        reply_route=route(wrote),
    )


def agent_reply_at(at: datetime, wrote: datetime | None) -> MessageAdded:
    return MessageAdded(
        event_id=uuid.uuid4(),
        occurred_at=at,
        ticket_id="SB-1001",
        message_id=uuid.uuid4(),
        author="agent",
        agent_id="ana",
        channel="whatsapp",
        text="Your parcel left today.",
        reply_route=route(wrote),
        received_at=at,
    )


def test_the_acknowledgement_goes_inside_the_window_and_not_outside_it():
    [ack] = plan(created_at(NOW, NOW), NotifierView(), CONFIG)
    assert ack.target == "whatsapp:34600123456" and "SB-1001" in ack.text and ack.purpose == "acknowledgement"
    assert plan(created_at(NOW + timedelta(hours=25), NOW), NotifierView(), CONFIG) == []


def test_a_reply_inside_the_window_is_sent_and_one_outside_is_held_with_the_template_named():
    [reply, _mirror] = plan(agent_reply_at(NOW + timedelta(hours=23), NOW), NotifierView(), CONFIG)
    assert reply.purpose == "reply" and reply.target == "whatsapp:34600123456" and reply.message_id
    held = plan(agent_reply_at(NOW + timedelta(hours=25), NOW), NotifierView(), CONFIG)
    assert [delivery.target for delivery in held] == ["slack:C0SUPPORT"], "only the agent is told"
    assert "the reply is held" in held[0].text and "support_follow_up" in held[0].text and "en_US" in held[0].text


def test_long_replies_are_cut_into_messages_whatsapp_accepts():
    text = "\n".join(["x" * 3000, "y" * 3000, "z" * 10])
    chunks = split_for_whatsapp(text)
    assert chunks == ["x" * 3000, "y" * 3000 + "\n" + "z" * 10]
    assert split_for_whatsapp("a" * 9000) == ["a" * 4096, "a" * 4096, "a" * 808]
    assert split_for_whatsapp("short") == ["short"]


def test_a_reply_whatsapp_reports_failed_is_shown_to_the_agents_in_the_tickets_thread():
    failed = status_event(
        read_webhook(
            status_webhook(
                "wamid.OUT",
                "failed",
                recipient="34600123456",
                timestamp=STAMP,
                tracking=Tracking("SB-1001", "reply", str(uuid.uuid4())).encode(),
                errors=[{"code": 131026, "title": "Message undeliverable"}],
            ),
            DEFAULT_PHONE_NUMBER_ID,
        ).statuses[0]
    )
    [post] = plan(failed, NotifierView(), CONFIG)
    assert post.target == "slack:C0SUPPORT" and post.in_thread
    assert "whatsapp could not deliver it: 131026 Message undeliverable" in post.text
    delivered = failed.model_copy(update={"status": "delivered"})
    assert plan(delivered, NotifierView(), CONFIG) == []


def test_a_form_then_whatsapp_from_the_same_phone_is_one_contact_with_the_phone_verified():
    view = RouterView()
    form = InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=NOW,
        channel="form",
        channel_message_id="f1",
        source="contact",
        sender=Sender(name="Ana", email="ana@example.com", phone="+34 600 123 456"),
        text="help",
    )
    decision = decide_inbound(form, view, CONFIG, NOW)
    view.absorb(decision.events)
    [created] = [event for event in decision.events if isinstance(event, TicketCreated)]
    message = one_message({"type": "text", "text": {"body": "it's me again"}})
    resolution = Resolution("SB-1002", uuid.uuid4(), "whatsapp:message:wamid.A1", ("whatsapp:34600123456",))
    whatsapp = decide_inbound(
        to_inbound(message, resolution=resolution, attachments=[], refusals=[]), view, CONFIG, NOW
    )
    view.absorb(whatsapp.events)
    [opened] = [event for event in whatsapp.events if isinstance(event, TicketCreated)]
    assert opened.contact.contact_id == created.contact.contact_id
    assert view.graph.verified(created.contact.contact_id) == {"phone:+34600123456"}


def test_a_held_reply_typed_in_the_thread_gets_a_warning_and_an_ephemeral_saying_why():
    typed = agent_reply_at(NOW + timedelta(days=2), NOW).model_copy(
        update={"origin": SlackOrigin(user_id="U0ANA", channel_id="C0SUPPORT", message_ts="1.2", thread_ts="1.1")}
    )
    reaction, why = plan(typed, NotifierView(), CONFIG)
    assert reaction.reaction == "warning" and why.user == "U0ANA" and "the reply is held" in why.text


def test_a_reply_to_a_logged_call_on_whatsapp_is_held_until_the_caller_writes_there():
    [held] = plan(agent_reply_at(NOW, None), NotifierView(), CONFIG)
    assert "the customer has not written on WhatsApp" in held.text and "support_follow_up" in held.text
