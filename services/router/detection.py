"""What a new ticket's message says about itself, offline: its language, whether it reads negative, whether
it is urgent. No I/O beyond loading the packages' own models once per process.

- Language: the channel's hint when it names one of the desk's languages (`InboundMessage.language_hint`);
  else py3langid (a naive Bayes model shipped in the package) restricted to the desk's languages, on the
  first SAMPLE_CHARS characters of subject and text; else (no letters to go by) the desk's first language.
- Negative: VADER's compound score (vaderSentiment; English only, a lexicon) at or below
  `detection.negative_at` (< 0), on the subject and the first SENTIMENT_CHARS characters of the text;
  only when the config reads sentiment (`DeskConfig.reads_sentiment`). A text with none of VADER's
  negative cues scores >= 0, so it is not scored at all (`_negative_cues`).
- Urgent: a word of the ticket language's list (`detection.urgent_words`) in the subject or the text's first
  MATCH_CHARS characters.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from typing import Any, Literal

import re2

from shared.config import DeskConfig
from shared.events import InboundMessage
from shared.rules import MATCH_CHARS

# Naive Bayes settles on a language within a couple of hundred characters; more only costs time
# (py3langid walks the sample byte by byte in Python, about 0.1 µs a byte).
SAMPLE_CHARS = 200
SENTIMENT_CHARS = 1_000


@dataclass(frozen=True)
class Detected:
    language: str
    # Where the language came from, for `switchboard route explain`.
    language_from: Literal["hint", "detection", "default"]
    # VADER's compound score (-1 … 1); None when not scored: the config does not read sentiment, the
    # language is not English, or the text has no negative cue (then it scores >= 0).
    sentiment: float | None
    negative: bool
    # The urgency word found, None when there is none.
    urgent_word: str | None

    @property
    def urgent(self) -> bool:
        return self.urgent_word is not None

    @property
    def flags(self) -> list[str]:
        return [flag for flag, held in (("negative", self.negative), ("urgent", self.urgent)) if held]


def detect(message: InboundMessage, config: DeskConfig) -> Detected:
    language, language_from = _language(message, config.languages)
    subject = message.subject or ""
    sentiment = None
    if (
        language == "en"
        and config.reads_sentiment
        and _negative_cues().search(opening := f"{subject}\n{message.text[:SENTIMENT_CHARS]}")
    ):
        sentiment = _analyser().polarity_scores(opening)["compound"]
    negative = sentiment is not None and sentiment <= config.detection.negative_at
    urgent_word = config.detection.urgent_word(language, f"{subject}\n{message.text[:MATCH_CHARS]}")
    return Detected(language, language_from, sentiment, negative, urgent_word)


def _language(message: InboundMessage, languages: list[str]) -> tuple[str, Literal["hint", "detection", "default"]]:
    if (hint := primary_language(message.language_hint)) in languages:
        return hint, "hint"
    if len(languages) == 1:
        return languages[0], "default"
    identified = identify(message, languages)
    return (identified, "detection") if identified else (languages[0], "default")


def identify(message: InboundMessage, languages: list[str]) -> str | None:
    """Which of `languages` (ISO 639-1) the message's subject and text are written in, by py3langid on the
    first SAMPLE_CHARS characters; None when there are no letters to go by or the model knows fewer than two
    of `languages`."""
    return _identify(f"{message.subject or ''}\n{message.text[:SAMPLE_CHARS]}", languages)


def text_language(text: str, languages: list[str]) -> str:
    """The language of a plain text (a search query) among `languages`, as `detect` reads a message's: the
    first of them when it cannot tell (one language, no letters, none the model knows)."""
    if len(languages) == 1:
        return languages[0]
    return _identify(text[:SAMPLE_CHARS], languages) or languages[0]


def _identify(sample: str, languages: list[str]) -> str | None:
    if not any(char.isalpha() for char in sample):
        return None
    identifier = _identifier(tuple(languages))
    return None if identifier is None else identifier.classify(sample)[0]


def load_models(config: DeskConfig) -> None:
    """Loads py3langid's model restricted to the desk's languages, and VADER's lexicon when the config reads
    sentiment, now (a fraction of a second each) rather than in the first batch a router decides."""
    _identifier(tuple(config.languages))
    if config.reads_sentiment:
        _analyser()


def primary_language(tag: str | None) -> str | None:
    """The primary language subtag of a BCP 47 tag (RFC 5646) or a list of them: "en-GB, fr" → "en"."""
    if not tag:
        return None
    return tag.split(",", 1)[0].strip().replace("_", "-").split("-", 1)[0].lower() or None


@functools.cache
def _model() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE)


@functools.cache
def _identifier(languages: tuple[str, ...]) -> Any:
    """The model restricted to `languages` (those it knows), or None when it knows fewer than two."""
    model = _model()
    known = [language for language in languages if language in model.labels]
    if len(known) < 2:
        return None
    # A shallow copy shares the model's arrays: restricting it replaces its own references only.
    restricted = copy.copy(model)
    restricted.set_languages(known)
    return restricted


@functools.cache
def _analyser() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


@functools.cache
def _negative_cues() -> Any:
    """What can give a text a negative VADER score (vaderSentiment 3.3, SentimentIntensityAnalyzer): a word
    its lexicon rates 0 or below (capitals and dampeners push a 0 below), a negation (its NEGATE list, any
    "n't"), a dampener (negative BOOSTER_DICT entries: they can tip a weak positive word), "least" and "yeah"
    (of "yeah right"), and emoji (read as their descriptions). Without any, every word scores >= 0, and so
    does the text. A superset is harmless: VADER then runs and decides."""
    from vaderSentiment.vaderSentiment import BOOSTER_DICT, NEGATE

    analyser = _analyser()
    cues = {word for word, valence in analyser.lexicon.items() if valence <= 0}
    cues |= {*NEGATE, *(word for word, scalar in BOOSTER_DICT.items() if scalar < 0), "least", "yeah"}
    # VADER splits on whitespace and strips ASCII punctuation: a word's edges are anything but letters and digits.
    words = [cue for cue in cues if cue[0].isalnum() and cue[-1].isalnum()]
    symbols = [cue for cue in cues if not (cue[0].isalnum() and cue[-1].isalnum())]
    emoji = "".join(re2.escape(char) for char in analyser.emojis if len(char) == 1)
    alternatives = "|".join(map(re2.escape, sorted(words, key=len, reverse=True)))
    pattern = (
        rf"(?i)(?:^|[^\pL\pN])(?:{alternatives})(?:[^\pL\pN]|$)|{'|'.join(map(re2.escape, symbols))}|n't|[{emoji}]"
    )
    options = re2.Options()
    options.max_mem = 32 << 20
    return re2.compile(pattern, options)
