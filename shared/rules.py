"""Classification rules of the desk config: conditions on a new ticket's message, actions on its ticket.

The shape follows Mailman 3's chains: each condition is a small named class that says whether it holds
for a message (`check`) and why (`describe`); a rule is conditions that must all hold plus actions; the
chain is the config's ordered `rules` list, run top to bottom until a rule with `stop` fires, and the
name of every rule that fired is recorded on the ticket. Conditions see the message and what detection
found in it (`Facts`), never what an earlier rule set.

Patterns are RE2 (linear time in the text, no backtracking: google-re2), compiled when the config
loads, and see at most the first MATCH_CHARS characters of a subject or text. Pure: no I/O.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol

import re2
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from shared.events import Channel, Tag

# How much of a subject or text patterns and keywords look at, in characters.
MATCH_CHARS = 10_000
PRIORITY_ORDER = ("low", "normal", "high", "urgent")
Priority = Literal["low", "normal", "high", "urgent"]
LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]


def _options() -> re2.Options:
    options = re2.Options()
    # A bad pattern is reported through the config's own errors, not logged by RE2 on stderr.
    options.log_errors = False
    return options


def compile_pattern(pattern: str) -> Any:
    """An RE2 pattern (Python `re` syntax without backreferences and lookaround); ValueError saying why not."""
    try:
        return re2.compile(pattern, _options())
    except re2.error as error:
        reason = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else error
        raise ValueError(f"not an RE2 pattern: {reason}") from None


def _unspaced(char: str) -> bool:
    """Scripts written without spaces between words (Chinese, Japanese kana, Thai): no word boundaries there."""
    return unicodedata.name(char, "").startswith(("CJK ", "HIRAGANA", "KATAKANA", "THAI"))


def _word_char(char: str) -> bool:
    return (char.isalnum() or char == "_") and not _unspaced(char)


_LEFT, _RIGHT = r"(?:^|[^\pL\pN_])", r"(?:[^\pL\pN_]|$)"


class WordMatcher:
    """Finds the first of some words or phrases in a text, ignoring case; whole words only where the
    script separates words with spaces ("urgent" is not found in "urgently"; 紧急 is found in 非常紧急)."""

    def __init__(self, words: Sequence[str]):
        self.words = tuple(words)
        alternatives = [
            f"{_LEFT if _word_char(word[0]) else ''}{re2.escape(word)}{_RIGHT if _word_char(word[-1]) else ''}"
            for word in sorted(self.words, key=len, reverse=True)
        ]
        self._pattern = compile_pattern(f"(?i){'|'.join(alternatives)}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordMatcher) and other.words == self.words

    def __hash__(self) -> int:
        return hash(self.words)

    def find(self, *texts: str) -> str | None:
        """The first word found (as written in the text), or None."""
        for text in texts:
            if match := self._pattern.search(text):
                return match.group(0).strip(" \t\r\n.,;:!?¡¿()[]{}\"'")
        return None


@dataclass(frozen=True)
class Facts:
    """What conditions look at: the message's fields (addresses and domains lower-case, subject and text
    cut to MATCH_CHARS) and what detection found in it."""

    channel: str
    source: str
    to_addresses: frozenset[str]
    contact_domain: str | None
    subject: str
    text: str
    has_attachment: bool
    language: str
    urgent: bool
    negative: bool
    # The calendars (IDs) the rules name that were open when the message was received.
    open_calendars: frozenset[str] = frozenset()
    # The tags of the sender's contact (its survivor's, when merged) as the router read them.
    contact_tags: frozenset[str] = frozenset()


class Condition(Protocol):
    name: ClassVar[str]

    def check(self, facts: Facts) -> bool: ...

    def describe(self, facts: Facts) -> str:
        """What the condition saw, for `switchboard route explain`."""
        ...


def _listing(values: frozenset[str] | tuple[str, ...]) -> str:
    return ", ".join(sorted(values))


@dataclass(frozen=True)
class ChannelIs:
    name: ClassVar[str] = "channel"
    channels: frozenset[str]

    def check(self, facts: Facts) -> bool:
        return facts.channel in self.channels

    def describe(self, facts: Facts) -> str:
        return f"channel {facts.channel} {'in' if self.check(facts) else 'not in'} [{_listing(self.channels)}]"


@dataclass(frozen=True)
class SourceIs:
    name: ClassVar[str] = "source"
    sources: frozenset[str]

    def check(self, facts: Facts) -> bool:
        return facts.source in self.sources

    def describe(self, facts: Facts) -> str:
        return f"source {facts.source!r} {'in' if self.check(facts) else 'not in'} [{_listing(self.sources)}]"


@dataclass(frozen=True)
class ToAddress:
    name: ClassVar[str] = "to_address"
    addresses: frozenset[str]

    def check(self, facts: Facts) -> bool:
        return not self.addresses.isdisjoint(facts.to_addresses)

    def describe(self, facts: Facts) -> str:
        written_to = _listing(facts.to_addresses) or "nobody named"
        return f"written to {written_to}: {'one' if self.check(facts) else 'none'} of [{_listing(self.addresses)}]"


@dataclass(frozen=True)
class ContactDomain:
    """The sender's email domain is one of `domains` or a subdomain of one."""

    name: ClassVar[str] = "contact_domain"
    domains: frozenset[str]

    def check(self, facts: Facts) -> bool:
        domain = facts.contact_domain
        if domain is None:
            return False
        return domain in self.domains or any(domain.endswith(f".{parent}") for parent in self.domains)

    def describe(self, facts: Facts) -> str:
        held = "in" if self.check(facts) else "not in"
        return f"contact domain {facts.contact_domain or '(no email)'} {held} [{_listing(self.domains)}]"


@dataclass(frozen=True)
class ContactTag:
    """The sender's contact has one of `tags` (`switchboard contact tag`)."""

    name: ClassVar[str] = "contact_tag"
    tags: frozenset[str]

    def check(self, facts: Facts) -> bool:
        return not self.tags.isdisjoint(facts.contact_tags)

    def describe(self, facts: Facts) -> str:
        has = _listing(facts.contact_tags) or "no tags"
        return f"contact tags [{has}]: {'one' if self.check(facts) else 'none'} of [{_listing(self.tags)}]"


@dataclass(frozen=True)
class _Matches:
    source: str
    pattern: Any = field(init=False, compare=False, repr=False)
    # The Facts attribute the pattern searches.
    looks_at: ClassVar[str]

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", compile_pattern(self.source))

    def check(self, facts: Facts) -> bool:
        return self.pattern.search(getattr(facts, self.looks_at)) is not None

    def describe(self, facts: Facts) -> str:
        match = self.pattern.search(getattr(facts, self.looks_at))
        found = f"matches at {match.group(0)[:60]!r}" if match else "does not match"
        return f"{self.looks_at} {found} ({self.source})"


@dataclass(frozen=True)
class SubjectMatches(_Matches):
    name: ClassVar[str] = "subject_matches"
    looks_at: ClassVar[str] = "subject"


@dataclass(frozen=True)
class TextMatches(_Matches):
    name: ClassVar[str] = "text_matches"
    looks_at: ClassVar[str] = "text"


@dataclass(frozen=True)
class KeywordsAny:
    """Any of the words in the subject or the text (see WordMatcher)."""

    name: ClassVar[str] = "keywords_any"
    words: WordMatcher

    def check(self, facts: Facts) -> bool:
        return self.words.find(facts.subject, facts.text) is not None

    def describe(self, facts: Facts) -> str:
        word = self.words.find(facts.subject, facts.text)
        return f"keyword {word!r} found" if word else f"none of [{', '.join(self.words.words)}] found"


@dataclass(frozen=True)
class LanguageIs:
    name: ClassVar[str] = "language"
    languages: frozenset[str]

    def check(self, facts: Facts) -> bool:
        return facts.language in self.languages

    def describe(self, facts: Facts) -> str:
        return f"language {facts.language} {'in' if self.check(facts) else 'not in'} [{_listing(self.languages)}]"


@dataclass(frozen=True)
class SentimentIs:
    name: ClassVar[str] = "sentiment"
    sentiment: Literal["negative"]

    def check(self, facts: Facts) -> bool:
        return facts.negative

    def describe(self, facts: Facts) -> str:
        return "the message reads negative" if facts.negative else "the message does not read negative"


@dataclass(frozen=True)
class Urgent:
    name: ClassVar[str] = "urgent"
    expected: bool

    def check(self, facts: Facts) -> bool:
        return facts.urgent == self.expected

    def describe(self, facts: Facts) -> str:
        return f"the message {'is' if facts.urgent else 'is not'} urgent (wanted: {str(self.expected).lower()})"


@dataclass(frozen=True)
class HasAttachment:
    name: ClassVar[str] = "has_attachment"
    expected: bool

    def check(self, facts: Facts) -> bool:
        return facts.has_attachment == self.expected

    def describe(self, facts: Facts) -> str:
        has = "has" if facts.has_attachment else "has no"
        return f"the message {has} attachment (wanted: {str(self.expected).lower()})"


@dataclass(frozen=True)
class BusinessHours:
    """Within (or, `expected` False, outside) the open hours of a business calendar when the message came."""

    name: ClassVar[str] = "within_business_hours"
    calendar: str
    expected: bool = True

    def check(self, facts: Facts) -> bool:
        return (self.calendar in facts.open_calendars) == self.expected

    def describe(self, facts: Facts) -> str:
        state = "open" if self.calendar in facts.open_calendars else "closed"
        wanted = "open" if self.expected else "closed"
        return f"calendar {self.calendar} was {state} when the message came (wanted: {wanted})"


def _as_list(value: Any) -> Any:
    """`channel: email` reads as `channel: [email]`."""
    return [value] if isinstance(value, str) else value


OneOrMore = Annotated[list[str], BeforeValidator(_as_list), Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleConditions(_Strict):
    """`when`: every condition given must hold (none given: the rule always fires)."""

    channel: Annotated[list[Channel], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    # Which entry point took the message: a form ID, "smtp", "imap:INBOX", a Slack channel ID, "telegram", "web-chat".
    source: OneOrMore | None = None
    to_address: OneOrMore | None = None
    contact_domain: OneOrMore | None = None
    # Tags of the sender's contact: one of them is enough (compared lower-case, as contact tags are).
    contact_tag: OneOrMore | None = None
    subject_matches: str | None = None
    text_matches: str | None = None
    keywords_any: OneOrMore | None = None
    language: Annotated[list[LanguageCode], BeforeValidator(_as_list), Field(min_length=1)] | None = None
    sentiment: Literal["negative"] | None = None
    urgent: bool | None = None
    has_attachment: bool | None = None
    # A calendar ID (`calendars`, or `24x7`): the message came in (or, outside_, out of) its open hours.
    within_business_hours: str | None = None
    outside_business_hours: str | None = None

    @field_validator("subject_matches", "text_matches")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            compile_pattern(pattern)
        return pattern

    @field_validator("keywords_any")
    @classmethod
    def _words(cls, words: list[str] | None) -> list[str] | None:
        if words is not None and not all(word.strip() for word in words):
            raise ValueError("a keyword cannot be blank")
        return words

    def model_post_init(self, _context: Any) -> None:
        self.conditions  # noqa: B018 (built, and so compiled, when the config loads)

    @property
    def calendars(self) -> set[str]:
        """The calendars the conditions name."""
        return {name for name in (self.within_business_hours, self.outside_business_hours) if name is not None}

    @functools.cached_property
    def conditions(self) -> tuple[Condition, ...]:
        """The conditions, cheap ones first (text conditions last: the others usually decide first)."""
        built: list[Condition] = []
        if self.channel is not None:
            built.append(ChannelIs(frozenset(self.channel)))
        if self.source is not None:
            built.append(SourceIs(frozenset(self.source)))
        if self.to_address is not None:
            built.append(ToAddress(frozenset(address.lower() for address in self.to_address)))
        if self.contact_domain is not None:
            built.append(ContactDomain(frozenset(domain.lower().lstrip("@") for domain in self.contact_domain)))
        if self.contact_tag is not None:
            built.append(ContactTag(frozenset(tag.lower() for tag in self.contact_tag)))
        if self.language is not None:
            built.append(LanguageIs(frozenset(self.language)))
        if self.urgent is not None:
            built.append(Urgent(self.urgent))
        if self.sentiment is not None:
            built.append(SentimentIs(self.sentiment))
        if self.has_attachment is not None:
            built.append(HasAttachment(self.has_attachment))
        if self.within_business_hours is not None:
            built.append(BusinessHours(self.within_business_hours))
        if self.outside_business_hours is not None:
            built.append(BusinessHours(self.outside_business_hours, expected=False))
        if self.keywords_any is not None:
            built.append(KeywordsAny(WordMatcher(self.keywords_any)))
        if self.subject_matches is not None:
            built.append(SubjectMatches(self.subject_matches))
        if self.text_matches is not None:
            built.append(TextMatches(self.text_matches))
        return tuple(built)


class RuleActions(_Strict):
    """`set`: what a firing rule does to the ticket."""

    team: str | None = None
    category: str | None = None
    # Raised to this; lowered only with `force: true`.
    priority: Priority | None = None
    force: bool = False
    # Added to the ticket's tags and its required skills.
    tags: list[Tag] = []
    skills: list[str] = []
    # The ticket's language (the customer is answered in it), instead of the detected one.
    language: LanguageCode | None = None

    @model_validator(mode="after")
    def _force_needs_priority(self) -> RuleActions:
        if self.force and self.priority is None:
            raise ValueError("`force` applies to a priority, and none is set")
        return self


class Rule(_Strict):
    # `set` is the YAML key; a dumped config reads back the same.
    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    name: str = Field(min_length=1, max_length=100)
    when: RuleConditions = RuleConditions()
    actions: RuleActions = Field(default=RuleActions(), alias="set")
    # Ends the chain when this rule fires.
    stop: bool = False


@dataclass(frozen=True)
class Ruling:
    """One rule's outcome: `fired` None when the chain had stopped before it; `checked` the conditions
    evaluated, in order (all of them when it fired; up to the first that did not hold otherwise)."""

    rule: Rule
    fired: bool | None
    checked: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class Outcome:
    team: str
    category: str
    priority: str
    tags: tuple[str, ...]
    skills: tuple[str, ...]
    language: str
    fired: tuple[str, ...]


def run_rules(
    rules: Sequence[Rule],
    facts: Facts,
    *,
    team: str,
    category: str,
    priority: str,
    tags: Sequence[str],
    skills: Sequence[str] = (),
    trace: list[Ruling] | None = None,
) -> Outcome:
    """The ticket's classification after the chain, starting from the given one; each rule's ruling is
    appended to `trace` when one is given.

    Later rules override team, category and language; priority only rises (or is set as it is with
    `force`); tags and skills accumulate in order, without repeats."""
    tag_list, skill_list, language, fired = list(tags), list(skills), facts.language, []
    stopped = False
    for rule in rules:
        if stopped:
            if trace is not None:
                trace.append(Ruling(rule, None))
            continue
        conditions = rule.when.conditions
        failed = next((index for index, condition in enumerate(conditions) if not condition.check(facts)), None)
        held = failed is None
        if trace is not None:
            trace.append(Ruling(rule, held, conditions if failed is None else conditions[: failed + 1]))
        if not held:
            continue
        fired.append(rule.name)
        actions = rule.actions
        team = actions.team or team
        category = actions.category or category
        if actions.priority and (actions.force or _rank(actions.priority) > _rank(priority)):
            priority = actions.priority
        if actions.tags:
            tag_list = list(dict.fromkeys([*tag_list, *actions.tags]))
        if actions.skills:
            skill_list = list(dict.fromkeys([*skill_list, *actions.skills]))
        language = actions.language or language
        stopped = rule.stop
    return Outcome(team, category, priority, tuple(tag_list), tuple(skill_list), language, tuple(fired))


def _rank(priority: str) -> int:
    return PRIORITY_ORDER.index(priority)
