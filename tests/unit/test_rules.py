"""Classification rules (shared/rules.py): each condition, each action, the chain, and the config's errors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.config import ConfigError, load_config
from shared.rules import MATCH_CHARS, PRIORITY_ORDER, Facts, Rule, RuleConditions, Ruling, WordMatcher, run_rules
from shared.settings import EXAMPLE_CONFIG

FACTS = Facts(
    channel="email",
    source="imap:INBOX",
    to_addresses=frozenset({"billing@example.com"}),
    contact_domain="mail.acme.example",
    subject="Refund for order 4471",
    text="I was charged twice. Please refund one payment.",
    has_attachment=False,
    language="en",
    urgent=False,
    negative=False,
)


def holds(when: dict, facts: Facts = FACTS) -> bool:
    conditions = RuleConditions.model_validate(when).conditions
    assert len(conditions) == len(when)
    return all(condition.check(facts) for condition in conditions)


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ({"channel": ["email", "form"]}, True),
        ({"channel": "telegram"}, False),
        ({"source": "imap:INBOX"}, True),
        ({"source": ["contact", "smtp"]}, False),
        ({"to_address": ["Billing@Example.com"]}, True),
        ({"to_address": "support@example.com"}, False),
        ({"contact_domain": "acme.example"}, True),  # a subdomain of it
        ({"contact_domain": "@mail.acme.example"}, True),
        ({"contact_domain": "cme.example"}, False),
        ({"subject_matches": r"order \d+"}, True),
        ({"subject_matches": "(?i)invoice"}, False),
        ({"text_matches": "(?i)REFUND|chargeback"}, True),
        ({"text_matches": "^Refund"}, False),
        ({"keywords_any": ["Payment", "invoice"]}, True),
        ({"keywords_any": ["pay"]}, False),  # whole words only
        ({"language": ["en", "es"]}, True),
        ({"language": "zh"}, False),
        ({"sentiment": "negative"}, False),
        ({"urgent": False}, True),
        ({"urgent": True}, False),
        ({"has_attachment": False}, True),
        ({"has_attachment": True}, False),
        ({"channel": "email", "language": "en", "text_matches": "refund"}, True),
        ({"channel": "email", "language": "es", "text_matches": "refund"}, False),
    ],
)
def test_each_condition_holds_or_not(when, expected):
    assert holds(when) is expected


def test_flag_conditions_read_what_detection_found():
    flagged = replace(FACTS, urgent=True, negative=True, has_attachment=True, language="zh")
    assert holds({"sentiment": "negative", "urgent": True, "has_attachment": True, "language": "zh"}, flagged)


def test_a_sender_without_email_has_no_contact_domain():
    assert not holds({"contact_domain": "acme.example"}, replace(FACTS, contact_domain=None))


def test_keywords_are_whole_words_where_words_are_spaced_and_substrings_in_chinese():
    words = WordMatcher(["urgent", "as soon as possible", "紧急", "asap!"])
    assert words.find("This is URGENT.") == "URGENT"
    assert words.find("please answer as soon  as possible") is None  # the phrase as written
    assert words.find("please answer As Soon As Possible") == "As Soon As Possible"
    assert words.find("urgently") is None and words.find("nonurgent") is None
    assert words.find("这个问题非常紧急") == "紧急"
    assert words.find("reply asap!") == "asap"  # shown without its punctuation


@given(
    word=st.text(st.characters(whitelist_categories=("Ll", "Lu")), min_size=1, max_size=12),
    before=st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Zs", "Po")), max_size=20),
    after=st.text(st.characters(whitelist_categories=("Ll", "Lu", "Nd", "Zs", "Po")), max_size=20),
)
def test_a_keyword_set_apart_by_spaces_is_always_found(word, before, after):
    assert WordMatcher([word]).find(f"{before} {word} {after}") is not None


def rule(name: str, when: dict | None = None, stop: bool = False, **actions) -> Rule:
    return Rule.model_validate({"name": name, "when": when or {}, "set": actions, "stop": stop})


def run(rules: list[Rule], facts: Facts = FACTS, priority: str = "normal", tags=("web",)):
    trace: list[Ruling] = []
    outcome = run_rules(rules, facts, team="support", category="general", priority=priority, tags=tags, trace=trace)
    assert run_rules(rules, facts, team="support", category="general", priority=priority, tags=tags) == outcome
    return outcome, trace


def test_actions_set_team_category_language_and_add_tags_and_skills():
    outcome, _ = run(
        [
            rule("a", team="billing", category="refund", tags=["refund", "web"], skills=["billing"]),
            rule("b", tags=["refund", "vip"], skills=["billing", "de"], language="es"),
        ]
    )
    assert (outcome.team, outcome.category, outcome.language) == ("billing", "refund", "es")
    assert outcome.tags == ("web", "refund", "vip")
    assert outcome.skills == ("billing", "de")
    assert outcome.fired == ("a", "b")


def test_priority_only_rises_unless_forced():
    assert run([rule("up", priority="high"), rule("down", priority="low")])[0].priority == "high"
    assert run([rule("up", priority="high"), rule("down", priority="low", force=True)])[0].priority == "low"
    assert run([rule("down", priority="low")], priority="urgent")[0].priority == "urgent"


def test_the_chain_runs_in_order_records_every_rule_that_fired_and_stops():
    rules = [
        rule("not email", {"channel": "telegram"}, team="x"),
        rule("refunds", {"text_matches": "refund"}, stop=True, team="billing"),
        rule("after the stop", team="sales"),
    ]
    outcome, rulings = run(rules)
    assert outcome.fired == ("refunds",) and outcome.team == "billing"
    assert [ruling.fired for ruling in rulings] == [False, True, None]
    assert [condition.name for condition in rulings[0].checked] == ["channel"]


def test_a_rule_stops_at_its_first_condition_that_does_not_hold_and_explains_it():
    [ruling] = run([rule("es refunds", {"language": "es", "text_matches": "refund"})])[1]
    [checked] = ruling.checked
    assert checked.describe(FACTS) == "language en not in [es]"


def test_a_rule_without_conditions_always_fires():
    assert run([rule("tag everything", tags=["seen"])])[0].tags == ("web", "seen")


rules_strategy = st.lists(
    st.tuples(st.sampled_from(PRIORITY_ORDER), st.booleans(), st.booleans()), min_size=0, max_size=8
)


@given(start=st.sampled_from(PRIORITY_ORDER), spec=rules_strategy)
def test_without_force_the_priority_is_the_highest_of_the_start_and_every_rule_that_fired(start, spec):
    rules = [
        rule(f"r{index}", {"urgent": not fires}, priority=priority) for index, (priority, fires, _) in enumerate(spec)
    ]
    outcome, rulings = run(rules, priority=start)
    fired = [priority for priority, fires, _ in spec if fires]
    assert outcome.priority == max([start, *fired], key=PRIORITY_ORDER.index)
    assert outcome.fired == tuple(f"r{index}" for index, (_, fires, _) in enumerate(spec) if fires)
    assert all(ruling.fired is not None for ruling in rulings)


@given(start=st.sampled_from(PRIORITY_ORDER), spec=rules_strategy)
def test_with_force_the_last_forced_rule_decides_unless_a_later_one_raises(start, spec):
    rules = [rule(f"r{i}", priority=priority, force=forced) for i, (priority, _, forced) in enumerate(spec)]
    expected = start
    for priority, _, forced in spec:
        if forced or PRIORITY_ORDER.index(priority) > PRIORITY_ORDER.index(expected):
            expected = priority
    assert run(rules, priority=start)[0].priority == expected


def test_patterns_see_a_bounded_text():
    late = replace(FACTS, text=("x " * MATCH_CHARS)[:MATCH_CHARS])
    assert not holds({"text_matches": "refund"}, late)


# --- The config ---------------------------------------------------------------------------------

RULES = """
rules:
  - name: refunds
    when: {channel: [email, form], text_matches: "(?i)refund"}
    set: {team: support, priority: high, skills: [billing]}
"""


def desk_with(tmp_path: Path, rules: str, languages: str = "languages: [en, es]") -> Path:
    text = EXAMPLE_CONFIG.read_text()
    text = text[: text.index("\nlanguages:")] + text[text.index("\n# SLA policies") :]
    path = tmp_path / "desk.yaml"
    path.write_text(f"{text}\n{languages}\n{rules}")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def line_of(path: Path, text: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_rules_load_with_their_patterns_compiled(tmp_path):
    config = load_config(desk_with(tmp_path, RULES))
    [refunds] = config.rules
    assert [condition.name for condition in refunds.when.conditions] == ["channel", "text_matches"]
    assert refunds.actions.skills == ["billing"]


def test_a_pattern_re2_cannot_run_in_linear_time_is_an_error_with_its_file_line_and_key(tmp_path):
    path = desk_with(tmp_path, RULES.replace('"(?i)refund"', r'"(refund)\\1"'))
    [problem] = problems_of(path)
    assert problem.startswith(f"{path}:{line_of(path, 'text_matches')}: rules.0.when.text_matches: ")
    assert "not an RE2 pattern: invalid escape sequence" in problem


@pytest.mark.parametrize(
    ("change", "key", "message"),
    [
        (("team: support", "team: sales"), "rules.0.set.team", "unknown team 'sales'"),
        (("skills: [billing]", "skills: [billing, klingon]"), "rules.0.set.skills", "no agent has skill 'klingon'"),
        (("channel: [email, form]", "channel: [email], language: [zh]"), "rules.0.when.language", "'zh' is not in"),
        (("priority: high", "language: fr"), "rules.0.set.language", "'fr' is not in the desk's languages"),
        (("priority: high", "force: true"), "rules.0.set", "`force` applies to a priority"),
        (("channel: [email, form]", "channel: [fax]"), "rules.0.when.channel.0", "Input should be"),
        (("text_matches:", "body_matches:"), "rules.0.when.body_matches", "Extra inputs are not permitted"),
        (("set:", "then:"), "rules.0.then", "Extra inputs are not permitted"),
    ],
)
def test_rule_errors_name_file_line_and_key(tmp_path, change, key, message):
    path = desk_with(tmp_path, RULES.replace(*change))
    [problem] = [problem for problem in problems_of(path) if f": {key}: " in problem]
    assert message in problem
    assert problem.startswith(f"{path}:{line_of(path, change[1])}:")


def test_two_rules_may_not_share_a_name(tmp_path):
    twice = RULES + RULES.removeprefix("\nrules:\n")
    path = desk_with(tmp_path, twice)
    assert problems_of(path) == [
        f"{path}:{path.read_text().count(chr(10)) - 2}: rules.1.name: another rule is named 'refunds'"
    ]


def test_detection_settings_are_checked(tmp_path):
    path = desk_with(tmp_path, "detection: {negative_at: 0.2, urgent_words: {en: ['']}}")
    problems = problems_of(path)
    assert any(": detection.negative_at: " in problem for problem in problems), problems
    assert any(": detection.urgent_words.en.0: " in problem for problem in problems), problems
    assert any(": languages.0: " in p for p in problems_of(desk_with(tmp_path, "", "languages: [English]")))


def test_a_dumped_config_reads_back_the_same():
    config = load_config(EXAMPLE_CONFIG)
    assert type(config).model_validate(config.model_dump()) == config
