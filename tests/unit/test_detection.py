"""Language, sentiment and urgency of a new ticket's message, offline (services/router/detection.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from services.router.detection import detect, primary_language
from shared.config import DeskConfig, load_config
from shared.events import InboundMessage, Sender
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CONFIG = load_config(EXAMPLE_CONFIG)  # languages en, es, zh; Spanish urgency words


def message(text: str, subject: str | None = None, **fields) -> InboundMessage:
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=NOW,
        channel="email",
        channel_message_id="<m@mail.example>",
        source="smtp",
        sender=Sender(email="ana@example.com"),
        subject=subject,
        text=text,
        **fields,
    )


def with_changes(**changes) -> DeskConfig:
    return DeskConfig.model_validate({**CONFIG.model_dump(), **changes})


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Hello, I cannot log in to my account since yesterday. Could you reset my password?", "en"),
        ("您好，我昨天付款了，但是订单还没有发货，请帮我查一下。", "zh"),
        ("Hola, me cobraron dos veces el mismo pedido. ¿Pueden devolverme uno de los pagos?", "es"),
    ],
)
def test_the_language_is_one_of_the_desks(text, language):
    detected = detect(message(text), CONFIG)
    assert (detected.language, detected.language_from) == (language, "detection")


def test_the_channels_hint_comes_first_when_it_names_a_desk_language():
    spanish_hint = detect(message("OK thanks", language_hint="es-MX"), CONFIG)
    assert (spanish_hint.language, spanish_hint.language_from) == ("es", "hint")
    assert detect(message("Merci beaucoup pour votre aide rapide", language_hint="fr"), CONFIG).language_from == (
        "detection"
    )
    assert primary_language("zh-Hans-CN, en;q=0.8") == "zh" and primary_language("pt_BR") == "pt"


def test_without_letters_or_with_one_desk_language_the_default_is_taken():
    assert detect(message("4471 / 12-03 :-)"), CONFIG).language_from == "default"
    english_only = with_changes(languages=["en"])
    assert detect(message("Hola, necesito ayuda"), english_only).language == "en"


@pytest.mark.parametrize(
    ("text", "subject", "word"),
    [
        ("Our shop is down, please fix this ASAP!", None, "ASAP"),
        ("Please call me back.", "URGENT: card blocked", "URGENT"),
        ("您好，我的账户被锁定了，非常紧急，请马上处理。", None, "紧急"),
        ("Mi pedido no ha llegado y lo necesito lo antes posible para la boda.", None, "lo antes posible"),
        ("Is there a nonurgent way to change my plan?", None, None),  # whole words only
    ],
)
def test_urgency_words_of_the_messages_language(text, subject, word):
    detected = detect(message(text, subject), CONFIG)
    assert detected.urgent_word == word
    assert ("urgent" in detected.flags) is (word is not None)


def test_urgency_words_are_configured_per_language():
    calm = with_changes(detection={"urgent_words": {"en": []}})
    assert not detect(message("Fix this ASAP"), calm).urgent
    assert detect(message("我的账户被锁定了，非常紧急"), calm).urgent, "the other languages keep their defaults"


SENTIMENT = with_changes(detection={"always_read_sentiment": True})
ANGRY = "This is terrible. Your app lost my data and nobody answers. Awful service!"


def test_an_angry_english_message_reads_negative_and_a_happy_one_does_not():
    angry = detect(message(ANGRY), SENTIMENT)
    assert angry.negative and angry.sentiment is not None and angry.sentiment <= -0.5
    assert angry.flags == ["negative"]
    happy = detect(message("Thanks a lot, the new version works great!"), SENTIMENT)
    assert not happy.negative and happy.flags == []


def test_sentiment_is_read_only_when_a_rule_asks_or_the_config_says_always():
    assert not CONFIG.reads_sentiment and detect(message(ANGRY), CONFIG).sentiment is None
    asking = with_changes(rules=[{"name": "angry", "when": {"sentiment": "negative"}, "set": {"priority": "high"}}])
    assert asking.reads_sentiment and detect(message(ANGRY), asking).negative


def test_the_negative_threshold_is_configurable():
    mild = message("The invoice is wrong.")
    assert not detect(mild, SENTIMENT).negative
    assert detect(mild, with_changes(detection={"negative_at": -0.2, "always_read_sentiment": True})).negative


def test_sentiment_is_read_in_english_only():
    detected = detect(message("Esto es terrible, el peor servicio del mundo, estoy furioso."), SENTIMENT)
    assert detected.language == "es" and detected.sentiment is None and not detected.negative


_ANALYSER = SentimentIntensityAnalyzer()
# Words VADER rates positive, neutral words, and the cues that can make a text negative.
_WORDS = (
    "great thanks good love happy nice helpful fine please order invoice account login app password today "
    "the a is my your and but not never no least yeah kind of sort barely hardly can't isn't terrible bad "
    "wrong angry hate broken ugh :( :) 😡 😊 ! ? BAD GREAT"
).split()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_WORDS), min_size=1, max_size=25), st.sampled_from([-0.05, -0.3, -0.5, -0.9]))
def test_skipping_texts_without_negative_cues_never_changes_the_verdict(words, threshold):
    text = " ".join(words)
    config = with_changes(languages=["en"], detection={"negative_at": threshold, "always_read_sentiment": True})
    expected = _ANALYSER.polarity_scores(f"\n{text}")["compound"] <= threshold
    assert detect(message(text), config).negative is expected
