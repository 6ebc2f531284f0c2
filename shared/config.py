"""The help desk's YAML configuration: teams, agents, classification, SLA policies.

`load_config` validates the whole file and reports every problem with its file, line and key.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import holidays as holiday_library
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared import calendars, i18n
from shared.durations import Duration
from shared.guard_config import Limits, Spam
from shared.ids import AGENT_ID_PATTERN
from shared.reports_config import Reports
from shared.rules import LanguageCode, Priority, Rule, WordMatcher
from shared.sla_policies import SlaPolicy

SlackChannelId = Annotated[str, Field(pattern=r"^[CGD][A-Z0-9]{2,}$")]
SlackUserId = Annotated[str, Field(pattern=r"^[UW][A-Z0-9]{2,}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _catalogue_locale(locale: str) -> str:
    """A locale that has a catalogue (shared/locales), as i18n spells it ("zh-hans" → "zh-Hans")."""
    known = {available.lower(): available for available in i18n.available()}
    if locale.replace("_", "-").lower() not in known:
        raise ValueError(
            f"no catalogue for {locale!r} (there are: {', '.join(i18n.available())}); README Languages says how to"
            " add one"
        )
    return known[locale.replace("_", "-").lower()]


# A language that has a message catalogue (shared/locales): "en", "zh-Hans".
CatalogueLocale = Annotated[str, AfterValidator(_catalogue_locale)]


class Agent(_Strict):
    id: str = Field(pattern=AGENT_ID_PATTERN)
    name: str
    slack_user_id: SlackUserId
    email: str | None = None
    skills: list[str] = []
    languages: list[str] = ["en"]
    capacity: int = Field(default=10, ge=1)
    timezone: str = "UTC"
    # The agent's working hours: a calendar ID (`calendars`, or the built-in `24x7`); none: always at work.
    calendar: str | None = None


def _check_spans(texts: list[str]) -> list[str]:
    calendars.parse_spans(texts)
    return texts


# A day's open intervals, "HH:MM-HH:MM" local wall times (end up to 24:00), none overlapping.
Spans = Annotated[list[str], AfterValidator(_check_spans)]


class IcsFile(_Strict):
    """An ICS file of holidays: its absolute path and the dates of its all-day events."""

    path: str
    dates: frozenset[date]


def _read_ics(value: Any, info: ValidationInfo) -> Any:
    """A path (relative to the config file's folder) → IcsFile; read once, when the config loads."""
    if not isinstance(value, str):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = Path((info.context or {}).get("config_dir", ".")) / path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from error
    try:
        return IcsFile(path=str(path.resolve()), dates=calendars.ics_holidays(text))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


class CalendarHolidays(_Strict):
    """Dates a calendar is closed: a country's (and subdivision's) public holidays, listed dates, an ICS file."""

    country: str | None = None  # ISO 3166-1 alpha-2, as the `holidays` library knows it
    subdivision: str | None = None  # e.g. BE (Berlin) for DE
    dates: list[date] = []
    ics: Annotated[
        IcsFile | None, BeforeValidator(_read_ics), PlainSerializer(lambda ics: ics.path if ics else None)
    ] = None

    @field_validator("country")
    @classmethod
    def _known_country(cls, country: str | None) -> str | None:
        if country is not None and country not in holiday_library.list_supported_countries():
            raise ValueError(f"the holidays library knows no country {country!r} (ISO 3166-1 alpha-2, e.g. DE)")
        return country

    @field_validator("subdivision")
    @classmethod
    def _known_subdivision(cls, subdivision: str | None, info: ValidationInfo) -> str | None:
        if subdivision is None or "country" not in info.data:  # an unknown country is reported already
            return subdivision
        country = info.data["country"]
        if country is None:
            raise ValueError("a subdivision needs its country")
        known = holiday_library.list_supported_countries()[country]
        if subdivision not in known:
            raise ValueError(f"{country} has no subdivision {subdivision!r}; known: {', '.join(known)}")
        return subdivision

    def closed_dates(self) -> calendars.Holidays:
        listed = frozenset(self.dates) | (self.ics.dates if self.ics else frozenset())
        return calendars.Holidays(listed, self.country, self.subdivision)


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class CalendarConfig(_Strict):
    """A business calendar (shared/calendars.py): time zone, weekly hours, holidays, partial-day overrides."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    timezone: str  # IANA, e.g. Europe/Berlin
    # Weekday → open intervals (split shifts: several); an absent day or [] is closed.
    hours: dict[Weekday, Spans] = {}
    holidays: CalendarHolidays = CalendarHolidays()
    # A date → its own intervals for that day ([]: closed), winning over `hours` and `holidays`.
    overrides: dict[date, Spans] = {}

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, timezone: str) -> str:
        calendars.zone(timezone)
        return timezone

    @field_validator("id")
    @classmethod
    def _not_built_in(cls, calendar_id: str) -> str:
        if calendar_id == calendars.ALWAYS_OPEN_ID:
            raise ValueError(f"{calendar_id!r} is built in")
        return calendar_id

    def build(self) -> calendars.Calendar:
        """The calendar's arithmetic (its fields are valid: checked when the config loaded)."""
        return calendars.Calendar(
            self.id,
            calendars.zone(self.timezone),
            calendars.spans_by_weekday(self.hours),
            self.holidays.closed_dates(),
            {day: calendars.parse_spans(texts) for day, texts in self.overrides.items()},
        )


class Team(_Strict):
    id: str
    name: str
    slack_channel: SlackChannelId
    lead: str | None = None
    members: list[str] = Field(min_length=1)
    # How new and queued tickets are shared among the members (services/router/assignment.py): in turn,
    # to the least loaded (load / capacity), or to the best skill match first, then the least loaded.
    routing: Literal["round_robin", "least_loaded", "skills"] = "round_robin"
    # A queued ticket whose required skills no eligible member holds goes to anyone otherwise eligible
    # once it has waited this long.
    skills_timeout: Duration = timedelta(minutes=10)
    sla_policy: str
    # Who a ticket is escalated to, level by level (agent IDs); empty: the lead alone.
    escalation: list[str] = []
    # The language of what Switchboard writes to the team in Slack (a catalogue's locale); none: the desk's.
    language: CatalogueLocale | None = None

    def escalation_chain(self) -> list[str]:
        """The agents of each escalation level, first level first: `escalation`, else the lead."""
        return list(self.escalation) or ([self.lead] if self.lead else [])


class Form(_Strict):
    id: str
    team: str | None = None


class Classification(_Strict):
    """A ticket's classification: the config's default, and what the router decides for a new ticket."""

    team: str
    category: str = "general"
    priority: Priority = "normal"
    tags: list[str] = []
    # Skills an agent needs for the ticket (rules add them).
    skills: list[str] = []
    # Decided by the router, never configured: the ticket's language (ISO 639-1), its flags ("negative",
    # "urgent") and the names of the rules that fired, in order.
    language: str | None = None
    flags: list[str] = []
    rules: list[str] = []
    # Decided by the router too: the language the customer is written to (shared/i18n.py `choose`) and why.
    customer_language: str | None = None
    customer_language_from: str | None = None


# Urgency words per language when the config gives none for it (`detection.urgent_words`).
DEFAULT_URGENT_WORDS: dict[str, list[str]] = {
    "en": [
        "urgent", "urgently", "asap", "as soon as possible", "emergency", "immediately", "right away",
        "critical", "outage", "time-sensitive",
    ],
    "zh": ["紧急", "加急", "急需", "马上", "立即", "立刻", "尽快", "赶紧", "十万火急"],
}  # fmt: skip


class Detection(_Strict):
    """How the router reads a new ticket's language, sentiment and urgency (services/router/detection.py)."""

    # VADER's compound score (-1 … 1) at or below which an English message reads negative.
    negative_at: float = Field(default=-0.5, ge=-1, lt=0)
    # Sentiment is read (VADER: tens of µs a message) when a rule's `when` has `sentiment`; true: always,
    # so that every negative English ticket is flagged.
    always_read_sentiment: bool = False
    # Words or phrases that make a message urgent, per language: the list of the message's language
    # applies; a language given here replaces its defaults (an empty list turns them off).
    urgent_words: dict[LanguageCode, list[Annotated[str, Field(min_length=1, pattern=r"\S")]]] = {}

    def model_post_init(self, _context: Any) -> None:
        self._urgency  # noqa: B018 (compiled when the config loads)

    @functools.cached_property
    def _urgency(self) -> dict[str, WordMatcher]:
        words = {**DEFAULT_URGENT_WORDS, **self.urgent_words}
        return {language: WordMatcher(listed) for language, listed in words.items() if listed}

    def urgent_word(self, language: str, text: str) -> str | None:
        """The first urgency word of `language` found in `text`, or None."""
        matcher = self._urgency.get(language)
        return matcher.find(text) if matcher else None


class Duplicates(_Strict):
    """When a new ticket repeats one its contact opened shortly before (services/router/duplicates.py)."""

    # How long after a ticket was created a new one from its contact is compared with it; 0s: never.
    window: Duration = timedelta(minutes=30)
    # Similarity (0 … 1) from which the new ticket is merged into the earlier one, and from which the
    # agents are shown the pair instead.
    merge_at: float = Field(default=0.9, gt=0, le=1)
    suggest_at: float = Field(default=0.7, gt=0, le=1)

    @model_validator(mode="after")
    def _suggest_below_merge(self) -> Duplicates:
        if self.suggest_at > self.merge_at:
            raise ValueError("suggest_at must not be above merge_at")
        return self


class AcknowledgementTexts(_Strict):
    """One language's acknowledgement templates; {ticket_id}, {name} and {subject} are filled in. A text left
    out is the catalogue's (`ack.*` in shared/locales) in the customer's language."""

    email_subject: str | None = None
    email_body: str | None = None
    telegram: str | None = None
    # WeChat Customer Service (WeCom): sent through kf/send_msg, it is one of the 5 messages WeChat allows.
    wecom: str | None = None
    # A message that repeats the customer's open ticket joins it (`duplicates`): what they are told instead,
    # on every channel, with {ticket_id} the ticket it joined.
    merged: str | None = None
    slack: str | None = None
    whatsapp: str | None = None


class Acknowledgements(AcknowledgementTexts):
    """What a customer is told when their ticket opens, in their language: `languages.<locale>`'s template,
    else (for the desk's default language) the template given here, else the catalogue's text."""

    # Templates per language ("zh-Hans": {telegram: "..."}); keys are languages with a catalogue.
    languages: dict[CatalogueLocale, AcknowledgementTexts] = {}
    # At most this many acknowledgements per contact address per hour: a loop breaker.
    per_hour: int = Field(default=3, ge=0)
    # Addresses nobody proved (typed into the web form) are limited harder, so the form cannot be used to
    # mail third parties: per such address, and all of them together, per hour (issue #16).
    claimed_per_hour: int = Field(default=1, ge=0)
    claimed_total_per_hour: int = Field(default=1000, ge=0)

    def template(self, key: str, locale: str, desk_locale: str) -> str | None:
        """The configured template `key` ("telegram") for a customer of `locale`, or None: the catalogue's."""
        own = self.languages.get(locale)
        if own is not None and getattr(own, key) is not None:
            return getattr(own, key)
        return getattr(self, key) if locale == desk_locale else None


def _folder(value: object, info: ValidationInfo) -> object:
    """A folder path relative to the config file's folder → absolute (as ICS paths)."""
    if not isinstance(value, str):
        return value
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else Path((info.context or {}).get("config_dir", ".")) / path)


class KnowledgeBase(_Strict):
    """Articles that answer before an agent does (services/knowledge): search, help centre, suggestions."""

    # The folder of Markdown articles (relative to the config file's folder); none: only articles saved from Slack.
    path: Annotated[str | None, BeforeValidator(_folder)] = None
    # A new ticket is given at most `suggestions` articles scoring at least `suggest_at` (BM25, see
    # services/knowledge/search.py); 0 suggestions: none.
    suggestions: int = Field(default=3, ge=0, le=10)
    suggest_at: float = Field(default=1.5, gt=0)
    # Channels whose acknowledgement is followed by the suggested articles and a "this solved it" link (the
    # ticket's channel or the one it is answered on: "form" and "email" both name a form's tickets).
    deflect_channels: list[Literal["form", "email", "chat", "telegram", "slack"]] = []


class WhatsAppTemplate(_Strict):
    """A message template approved in WhatsApp Manager: the only message WhatsApp delivers outside the
    24-hour customer-service window (https://developers.facebook.com/docs/whatsapp/pricing#conversations)."""

    name: str = Field(pattern=r"^[a-z0-9_]{1,512}$")
    # The template's language code as WhatsApp Manager lists it: "en_US", "es", "pt_BR".
    language: str = Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")


class WhatsApp(_Strict):
    """The WhatsApp channel's desk settings (its credentials are environment variables, README "WhatsApp")."""

    # The template agents are told to use for a reply held outside the customer-service window.
    template: WhatsAppTemplate | None = None


class Assignment(_Strict):
    """How the router's dispatcher serves the team queues (services/router/dispatcher.py)."""

    # The dispatcher looks at every queue at least this often, besides being woken when capacity frees.
    sweep_every: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))
    # An agent away this long gets their new and open tickets returned to their team's queue (they stay
    # the preferred assignee when they are back).
    away_grace: Duration = Field(default=timedelta(minutes=10), ge=timedelta(0))


class DeskConfig(_Strict):
    ticket_prefix: str = Field(default="SB", pattern=r"^[A-Z]{2,5}$")
    support_addresses: list[str] = []
    # Slack Connect channels shared with customers: their messages become tickets.
    slack_support_channels: list[SlackChannelId] = []
    forms: list[Form] = []
    teams: list[Team] = Field(min_length=1)
    agents: list[Agent] = Field(min_length=1)
    default_classification: Classification
    # The languages tickets are told apart by (ISO 639-1); the first is the desk's default.
    languages: list[LanguageCode] = Field(default=["en"], min_length=1)
    detection: Detection = Detection()
    # Classification rules, run in order on every new ticket (shared/rules.py).
    rules: list[Rule] = []
    # Ordered: the first whose `when` matches a ticket applies, else its team's `sla_policy`
    # (shared/sla_policies.py).
    sla_policies: list[SlaPolicy] = Field(min_length=1)
    # Business calendars (SPEC §2), referred to by ID; `24x7` is built in.
    calendars: list[CalendarConfig] = []
    acknowledgements: Acknowledgements = Acknowledgements()
    whatsapp: WhatsApp = WhatsApp()
    assignment: Assignment = Assignment()
    duplicates: Duplicates = Duplicates()
    knowledge_base: KnowledgeBase = KnowledgeBase()
    # The public endpoints' rate limits and the form's spam checks (shared/guard_config.py, issue #16).
    limits: Limits = Limits()
    spam: Spam = Spam()
    # A solved ticket closes by itself after this long without a customer message (SPEC §3 Lifecycle).
    close_after: Duration = timedelta(days=4)
    # The scheduled Slack digest of `switchboard report` (shared/reports_config.py).
    reports: Reports = Reports()

    @functools.cached_property
    def rule_calendars(self) -> frozenset[str]:
        """The calendars the rules' `within_business_hours` / `outside_business_hours` name."""
        return frozenset(calendar for rule in self.rules for calendar in rule.when.calendars)

    @functools.cached_property
    def reads_sentiment(self) -> bool:
        """Whether the router scores a new ticket's sentiment: a rule asks for it, or the config always does."""
        return self.detection.always_read_sentiment or any(rule.when.sentiment is not None for rule in self.rules)

    @model_validator(mode="after")
    def _references_resolve(self) -> DeskConfig:
        agent_ids = {agent.id for agent in self.agents}
        team_ids = {team.id for team in self.teams}
        policy_ids = {policy.id for policy in self.sla_policies}
        problems = self._calendar_problems()
        for index, team in enumerate(self.teams):
            problems += [
                f"teams.{index}.members: unknown agent {member!r}" for member in team.members if member not in agent_ids
            ]
            if team.lead is not None and team.lead not in agent_ids:
                problems.append(f"teams.{index}.lead: unknown agent {team.lead!r}")
            problems += [
                f"teams.{index}.escalation: unknown agent {agent!r}"
                for agent in team.escalation
                if agent not in agent_ids
            ]
            if team.sla_policy not in policy_ids:
                problems.append(f"teams.{index}.sla_policy: unknown policy {team.sla_policy!r}")
        for index, form in enumerate(self.forms):
            if form.team is not None and form.team not in team_ids:
                problems.append(f"forms.{index}.team: unknown team {form.team!r}")
        if self.default_classification.team not in team_ids:
            problems.append(f"default_classification.team: unknown team {self.default_classification.team!r}")
        problems += self._rule_problems(team_ids)
        problems += self._policy_problems(team_ids)
        digest = self.reports.digest
        if digest is not None and digest.team is not None and digest.team not in team_ids:
            problems.append(f"reports.digest.team: unknown team {digest.team!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _calendar_problems(self) -> list[str]:
        seen: set[str] = set()
        problems = []
        for index, calendar in enumerate(self.calendars):
            if calendar.id in seen:
                problems.append(f"calendars.{index}.id: another calendar is {calendar.id!r}")
            seen.add(calendar.id)
        known = seen | {calendars.ALWAYS_OPEN_ID}
        problems += [
            f"agents.{index}.calendar: unknown calendar {agent.calendar!r}"
            for index, agent in enumerate(self.agents)
            if agent.calendar is not None and agent.calendar not in known
        ]
        return problems

    def _rule_problems(self, team_ids: set[str]) -> list[str]:
        skills = {skill for agent in self.agents for skill in agent.skills}
        languages = set(self.languages)
        default = self.default_classification
        problems = [
            f"default_classification.{key}: set by the router, not configured"
            for key in ("flags", "rules", "customer_language", "customer_language_from")
            if getattr(default, key)
        ]
        problems += [
            f"default_classification.skills: no agent has skill {s!r}" for s in default.skills if s not in skills
        ]
        names: set[str] = set()
        for index, rule in enumerate(self.rules):
            where = f"rules.{index}"
            if rule.name in names:
                problems.append(f"{where}.name: another rule is named {rule.name!r}")
            names.add(rule.name)
            actions = rule.actions
            if actions.team is not None and actions.team not in team_ids:
                problems.append(f"{where}.set.team: unknown team {actions.team!r}")
            problems += [f"{where}.set.skills: no agent has skill {s!r}" for s in actions.skills if s not in skills]
            if actions.language is not None and actions.language not in languages:
                problems.append(f"{where}.set.language: {actions.language!r} is not in the desk's languages")
            problems += [
                f"{where}.when.language: {language!r} is not in the desk's languages"
                for language in rule.when.language or ()
                if language not in languages
            ]
            known_calendars = {calendars.ALWAYS_OPEN_ID} | {calendar.id for calendar in self.calendars}
            problems += [
                f"{where}.when.{key}: unknown calendar {calendar!r}"
                for key in ("within_business_hours", "outside_business_hours")
                if (calendar := getattr(rule.when, key)) is not None and calendar not in known_calendars
            ]
        return problems

    def _policy_problems(self, team_ids: set[str]) -> list[str]:
        problems, seen = [], set()
        known_calendars = {calendars.ALWAYS_OPEN_ID} | {calendar.id for calendar in self.calendars}
        for index, policy in enumerate(self.sla_policies):
            where = f"sla_policies.{index}"
            if policy.id in seen:
                problems.append(f"{where}.id: another policy is {policy.id!r}")
            seen.add(policy.id)
            if policy.calendar not in known_calendars:
                problems.append(f"{where}.calendar: unknown calendar {policy.calendar!r}")
            for level_index, level in enumerate(policy.escalation):
                if level.reassign not in (None, "lead", "queue", *team_ids):
                    problems.append(
                        f"{where}.escalation.{level_index}.reassign: {level.reassign!r} is not lead, queue or a team"
                    )
                problems += [
                    f"{where}.escalation.{level_index}.notify: {target!r} is no agent, assignee, lead or Slack channel"
                    for target in level.notify
                    if target not in ("assignee", "lead")
                    and target not in {agent.id for agent in self.agents}
                    and not re.match(r"^[CG][A-Z0-9]{2,}$", target)
                ]
            if policy.when is not None:
                problems += [
                    f"{where}.when.team: unknown team {team!r}"
                    for team in policy.when.team or ()
                    if team not in team_ids
                ]
        return problems

    def team(self, team_id: str) -> Team:
        return next(team for team in self.teams if team.id == team_id)

    def agent(self, agent_id: str) -> Agent:
        return next(agent for agent in self.agents if agent.id == agent_id)

    def agent_by_slack_user(self, slack_user_id: str) -> Agent | None:
        """The agent a Slack user is (by `agents[].slack_user_id`), or None: anyone else is refused."""
        return next((agent for agent in self.agents if agent.slack_user_id == slack_user_id), None)

    def teams_of(self, agent_id: str) -> list[Team]:
        """The teams an agent is a member or the lead of."""
        return [team for team in self.teams if agent_id in team.members or team.lead == agent_id]

    def sla_policy(self, policy_id: str) -> SlaPolicy:
        return next(policy for policy in self.sla_policies if policy.id == policy_id)

    def sla_policy_for(
        self, *, priority: str, channel: str, team: str, category: str, contact_tags: Iterable[str] = ()
    ) -> SlaPolicy:
        """The first policy whose `when` matches the ticket (`contact_tags`: its contact's tags), else its
        team's (a team since removed from the config: the default team's)."""
        facts = {
            "priority": priority,
            "channel": channel,
            "team": team,
            "category": category,
            "contact_tags": frozenset(contact_tags),
        }
        matching = next((policy for policy in self.sla_policies if policy.matches(**facts)), None)
        if matching is not None:
            return matching
        known = next((known for known in self.teams if known.id == team), None)
        return self.sla_policy((known or self.team(self.default_classification.team)).sla_policy)

    def calendar(self, calendar_id: str) -> calendars.Calendar:
        """The calendar `calendar_id` (`calendars`, or the built-in `24x7`). Errors: KeyError."""
        return self._calendars[calendar_id]

    @functools.cached_property
    def _calendars(self) -> dict[str, calendars.Calendar]:
        return {calendars.ALWAYS_OPEN_ID: calendars.always_open()} | {c.id: c.build() for c in self.calendars}

    @functools.cached_property
    def desk_locale(self) -> str:
        """The desk's default language as a catalogue's locale: `languages[0]` ("zh" → "zh-Hans"), else en."""
        return i18n.choose(picked=None, hint=None, detected=None, default=self.languages[0]).locale

    def team_locale(self, team: Team) -> str:
        """The language Switchboard writes to `team` in (its `language`, else the desk's)."""
        return team.language or self.desk_locale

    def form(self, form_id: str) -> Form | None:
        return next((form for form in self.forms if form.id == form_id), None)


class ConfigError(ValueError):
    """Every problem of one config file, each as `file:line: key: message`."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(path: Path) -> DeskConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror}"]) from error
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError([f"{where}: invalid YAML: {getattr(error, 'problem', error)}"]) from error
    try:
        # ICS paths in the file are relative to its folder.
        return DeskConfig.model_validate(data or {}, context={"config_dir": path.parent})
    except ValidationError as error:
        raise ConfigError(_locate_problems(path, root, error)) from error


def _locate_problems(path: Path, root: yaml.Node | None, error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        loc = [str(part) for part in detail["loc"]]
        message = detail["msg"]
        if detail["type"] == "value_error" and not loc:
            # Cross-reference errors carry their own keys: "teams.0.lead: unknown agent 'x'; ...".
            for reference_problem in message.removeprefix("Value error, ").split("; "):
                key, _, text = reference_problem.partition(": ")
                line = _line_of(root, key.split("."))
                problems.append(f"{path}:{line}: {key}: {text}")
            continue
        key = ".".join(loc) or "(top level)"
        problems.append(f"{path}:{_line_of(root, loc)}: {key}: {message}")
    return problems


def _line_of(node: yaml.Node | None, loc: list[str]) -> int:
    """The 1-based line of the deepest YAML node along `loc` (the parent when the key is missing)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((value for key, value in node.value if key.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            child = node.value[int(part)]
        if child is None:
            break
        node, line = child, child.start_mark.line + 1
    return line
