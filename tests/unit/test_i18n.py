"""Message catalogues (shared/i18n.py), the choice of a customer's language, and texts per language."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pytest
from babel.core import Locale
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from services.intake.chat import (
    CustomerFrame,
    Hello,
    HelloFrame,
    frame_errors,
    language_fields,
    picked_language,
)
from services.intake.field_messages import field_errors, locale_of
from services.intake.forms import FormSubmission
from services.intake.guard import Limited
from services.intake.slack_agents import agent_texts
from services.intake.slack_modals import reassign_modal, text_modal
from services.intake.slack_slash import availability_answer, help_answer, parse
from services.notifier.cards import card_state, ticket_card
from services.notifier.plan import NotifierView, plan
from services.router.classification import classify
from shared import i18n
from shared.config import ConfigError, DeskConfig, load_config
from shared.events import ContactSummary, InboundMessage, ReplyRoute, Sender, TicketAssigned, TicketCreated
from shared.settings import EXAMPLE_CONFIG

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
CONFIG = load_config(EXAMPLE_CONFIG)
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _ids(locale: str) -> dict[str, object]:
    return {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in i18n.catalogue(locale) if m.id}


def test_en_and_zh_hans_have_catalogues():
    assert i18n.available()[0] == "en"
    assert {"en", "zh-Hans"} <= set(i18n.available())


@pytest.mark.parametrize("locale", [locale for locale in i18n.available() if locale != "en"])
def test_every_catalogue_translates_every_message_en_has(locale):
    """Fails when a catalogue lacks a key of `en`, leaves one untranslated or drops a placeholder."""
    reference, translated = _ids("en"), _ids(locale)
    missing = sorted(set(reference) - set(translated))
    assert not missing, f"{locale} lacks {missing}"
    for key, message in reference.items():
        other = translated[key]
        assert isinstance(other.id, tuple) == isinstance(message.id, tuple), f"{locale} {key}: plural or not as en"
        forms = other.string if isinstance(other.string, tuple) else (other.string,)
        assert all(forms), f"{locale} {key} is not translated"
        english = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set(PLACEHOLDER.findall(english[-1]))
        for form in forms:
            assert set(PLACEHOLDER.findall(form)) == wanted, f"{locale} {key}: placeholders differ from en"


@pytest.mark.parametrize("locale", i18n.available())
def test_each_catalogue_has_its_languages_plural_forms(locale):
    """As many gettext forms as CLDR has plural categories for the language (en: one/other, zh: other)."""
    catalogue = i18n.catalogue(locale)
    categories = Locale.parse(locale.replace("-", "_")).plural_form.tags | {"other"}
    assert catalogue.num_plurals == len(categories)
    for message in catalogue:
        if isinstance(message.id, tuple):
            assert len(message.string) == catalogue.num_plurals, message.id


def test_plurals_follow_the_language():
    english, chinese = i18n.texts("en"), i18n.texts("zh-Hans")
    assert english.plural("form.counter", 1, used=0) == "0 / 1 character"
    assert english.plural("form.counter", 4000, used=12) == "12 / 4,000 characters"
    assert chinese.plural("form.counter", 1, used=0) == "0 / 1 个字符"
    assert english.plural_forms("form.counter") == {
        "one": "{used} / {count} character",
        "other": "{used} / {count} characters",
    }
    assert chinese.plural_forms("form.counter") == {"other": "{used} / {count} 个字符"}


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans"),
        ("zh", "zh-Hans"),
        ("zh-hans", "zh-Hans"),
        ("zh_Hans", "zh-Hans"),
        # No zh-Hant catalogue: Traditional Chinese readers get Simplified rather than English.
        ("zh-TW", "zh-Hant" if "zh-Hant" in i18n.available() else "zh-Hans"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR, en;q=0.5, zh;q=0.7", "zh-Hans"),
        ("de, *;q=0.1", None),
        ("en;q=0, zh;q=0.1", "zh-Hans"),
        ("!!, xx-YY", None),
        ("", None),
        (None, None),
    ],
)
def test_negotiation_maps_browser_tags_to_catalogues(header, locale):
    assert i18n.negotiate(header) == locale


tags = st.sampled_from([None, "", "en", "en-US", "zh", "zh-CN", "zh-Hans", "fr", "de-DE", "xx", "!!"])


@given(picked=tags, hint=tags, detected=tags, default=tags.filter(lambda tag: tag is not None))
def test_the_first_known_language_in_the_order_wins(picked, hint, detected, default):
    """Picked on the page, then the channel's hint, then detection, then the desk's default, then en."""
    chosen = i18n.choose(picked=picked, hint=hint, detected=detected, default=default)
    order = [("picked", picked), ("hint", hint), ("detection", detected), ("default", default)]
    expected = next(
        ((i18n.negotiate(tag), source) for source, tag in order if i18n.negotiate(tag) is not None), ("en", "default")
    )
    assert (chosen.locale, chosen.source) == expected
    assert chosen.locale in i18n.available()


@pytest.mark.parametrize(
    ("picked", "accept_language", "then", "desk_locale", "locale"),
    [
        ("en", "zh-CN", (), "zh-Hans", "en"),
        ("zh-hans", "en-US", (), "en", "zh-Hans"),
        ("tlh", "zh-TW,en;q=0.5", (), "en", "zh-Hans"),
        (None, "fr, en-GB;q=0.4", (), "zh-Hans", "en"),
        (None, "fr", (), "zh-Hans", "zh-Hans"),
        (None, "fr", ("de", "zh"), "en", "zh-Hans"),
        ("", "", (None, ""), "en", "en"),
        # A desk default with no catalogue (what `DeskConfig.desk_locale` never gives) still answers one.
        (None, None, (), "fr", "en"),
    ],
)
def test_a_readers_language_is_the_pick_then_accept_language_then_the_desks(
    picked, accept_language, then, desk_locale, locale
):
    assert i18n.reader_locale(picked=picked, accept_language=accept_language, desk_locale=desk_locale, then=then) == (
        locale
    )


@given(picked=tags, accept_language=tags, then=st.lists(tags, max_size=3), desk_locale=tags)
def test_a_reader_always_gets_a_catalogue_the_first_known_of_the_order(picked, accept_language, then, desk_locale):
    locale = i18n.reader_locale(
        picked=picked, accept_language=accept_language, desk_locale=desk_locale or "", then=then
    )
    assert locale in i18n.available()
    known = [found for tag in (picked, accept_language, *then, desk_locale) if (found := i18n.negotiate(tag))]
    assert locale == (known[0] if known else "en")


@given(st.text(max_size=100), st.text(max_size=100), st.text(max_size=100))
def test_a_readers_language_never_raises_on_what_a_browser_sends(picked, accept_language, desk_locale):
    locale = i18n.reader_locale(picked=picked, accept_language=accept_language, desk_locale=desk_locale)
    assert locale in i18n.available()


def test_refusals_are_in_the_readers_language():
    limited = Limited(retry_after=900, scope="ip")
    assert limited.message(i18n.texts("en")) == "Too many requests; please try again in 900 s."
    assert limited.message(i18n.texts("zh-Hans")) == "请求过于频繁，请在 900 秒后重试。"
    hello = Hello(type="hello", language="zh-CN")

    def chat(picked, accept_language, desk_locale):
        return i18n.reader_texts(picked=picked, accept_language=accept_language, desk_locale=desk_locale)

    assert chat(hello.language, "en-US", "en")("refusal.chat_messages") == "消息发送过于频繁，请稍候。"
    assert chat(Hello(type="hello").language, "zh-TW, en;q=0.1", "en").locale == "zh-Hans"
    assert chat("tlh", "fr", "en").locale == "en"
    # Before the hello is read: the browser's languages, else the desk's.
    assert chat(None, "zh-CN", "en")("refusal.chat_unavailable") == "聊天暂时不可用，请稍后重试。"
    assert chat(None, None, "zh").locale == "zh-Hans"


@pytest.mark.parametrize(
    ("frame", "english", "chinese"),
    [
        (
            '{"type": "hello", "email": "nope"}',
            "email: Enter an email address that can receive mail, like name@example.com.",
            "email: 请输入可以收信的电子邮件地址，例如 name@example.com。",
        ),
        ('{"type": "hello", "color": "red"}', "color: this frame has no such field", "color: 此帧没有这一项。"),
        ("[1, 2]", "a frame is a JSON object of a known type", "帧须为已知类型的 JSON 对象。"),
        ("{not json", "a frame is a JSON object of a known type", "帧须为已知类型的 JSON 对象。"),
    ],
    ids=["bad-email", "unknown-field", "no-object", "no-json"],
)
def test_a_refused_chat_frame_is_explained_in_the_chats_language(frame, english, chinese):
    with pytest.raises(ValidationError) as refused:
        HelloFrame.validate_json(frame)
    assert frame_errors(refused.value, i18n.texts("en")) == english
    assert frame_errors(refused.value, i18n.texts("zh-Hans")) == chinese


@pytest.mark.parametrize(
    ("raw", "picked"),
    [
        ('{"type": "hello", "language": "zh-Hans", "email": "nope"}', "zh-Hans"),
        ('{"type": "hello", "language": 7}', None),
        ('["zh-Hans"]', None),
        ("{not json", None),
        ('{"language": "' + "x" * 100 + '"}', "x" * 64),
    ],
    ids=["invalid-hello", "no-string", "no-object", "no-json", "long"],
)
def test_a_refused_hellos_language_is_read_as_sent(raw, picked):
    assert picked_language(raw) == picked


def test_a_refused_chat_message_names_its_fields():
    with pytest.raises(ValidationError) as refused:
        CustomerFrame.validate_json('{"type": "message", "text": "' + "x" * 4001 + '", "at": 1}')
    assert sorted(frame_errors(refused.value, i18n.texts("zh-Hans")).split("; ")) == [
        "message.at: 此帧没有这一项。",
        "message.text: 请不要超过 4,000 个字符。",
    ]
    with pytest.raises(ValidationError) as refused:
        CustomerFrame.validate_json('{"type": "typing"}')
    assert frame_errors(refused.value, i18n.texts("en")) == "a frame is a JSON object of a known type"


def message(text: str, *, channel: str = "email", **fields) -> InboundMessage:
    message_id = uuid.uuid4()
    return InboundMessage.received(
        message_id=message_id,
        ticket_id="SB-1001",
        received_at=NOW,
        channel=channel,
        channel_message_id=str(message_id),
        source="test",
        sender=Sender(name="Li", email="li@example.com"),
        subject=None,
        text=text,
        **fields,
    )


@pytest.mark.parametrize(
    ("fields", "locale", "source"),
    [
        ({"text": "您好，我的账户无法登录，请帮忙看一下。"}, "zh-Hans", "detection"),
        ({"text": "Hello, I cannot log in to my account, please help."}, "en", "detection"),
        ({"text": "您好，我无法登录。", "customer_language": "en"}, "en", "picked"),
        ({"text": "Hello, I cannot log in.", "language_hint": "zh-hans"}, "zh-Hans", "hint"),
        ({"text": "您好", "language_hint": "en-US", "customer_language": "zh-Hans"}, "zh-Hans", "picked"),
        ({"text": "12345"}, "en", "default"),
        # Spanish (one of the example desk's languages) has no catalogue: the desk's default, not "detected" English.
        ({"text": "Hola, me cobraron dos veces el pedido. Quiero un reembolso."}, "en", "default"),
    ],
)
def test_a_tickets_customer_language_is_chosen_in_order(fields, locale, source):
    classification = classify(message(**fields), CONFIG)
    assert (classification.customer_language, classification.customer_language_from) == (locale, source)


def test_a_chinese_desk_defaults_to_simplified_chinese():
    data = CONFIG.model_dump()
    data["languages"] = ["zh", "en"]
    config = DeskConfig.model_validate(data)
    assert config.desk_locale == "zh-Hans"
    assert classify(message("12345"), config).customer_language == "zh-Hans"


def created(channel: str, locale: str | None, **fields) -> TicketCreated:
    address = {"email": "li@example.com", "telegram": "42", "slack": "C0CUSTOMERS"}[channel]
    return TicketCreated(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        ticket_id="SB-1001",
        channel=channel,
        subject=fields.pop("subject", None),
        contact=ContactSummary(contact_id="c_1", name=fields.pop("name", None)),
        team="support",
        category="general",
        priority="normal",
        reply_route=ReplyRoute(channel=channel, address=address),
        customer_language=locale,
        **fields,
    )


def acknowledgement(event: TicketCreated, config: DeskConfig = CONFIG):
    [delivery] = plan(event, NotifierView(), config)
    assert delivery.purpose == "acknowledgement"
    return delivery


def test_acknowledgements_are_written_in_the_customers_language():
    email = acknowledgement(created("email", "zh-Hans", subject="无法登录", name="李雷"))
    assert email.subject == "[SB-1001] 回复：无法登录"
    assert email.text.startswith("李雷，您好：") and "工单 SB-1001" in email.text
    assert email.language == "zh-Hans"
    telegram = acknowledgement(created("telegram", "zh-Hans"))
    # The example config's own zh-Hans template for Telegram.
    assert telegram.text == "谢谢！您的请求已登记为工单 SB-1001。我们会在这里答复您。"
    assert acknowledgement(created("slack", "zh-Hans")).text == "谢谢！这是工单 SB-1001，我们会在此对话串中答复您。"
    english = acknowledgement(created("email", "en"))
    assert english.text.startswith("Hello there,") and english.subject == "[SB-1001] Re: your request"
    # Tickets from before languages were chosen: the desk's default.
    assert acknowledgement(created("telegram", None)).text.startswith("Thanks! Your request is ticket SB-1001.")
    merged = acknowledgement(created("telegram", "zh-Hans", merged_into="SB-1000"))
    assert merged.text.startswith("谢谢！我们已将您的消息添加到您的请求 SB-1000 中")


def test_configured_templates_apply_to_their_language_and_the_catalogue_fills_the_rest():
    data = CONFIG.model_dump()
    data["acknowledgements"] = {
        "telegram": "Ticket {ticket_id}, noted.",
        "languages": {"zh-hans": {"slack": "工单 {ticket_id} 已收到。"}},
    }
    config = DeskConfig.model_validate(data)
    assert acknowledgement(created("telegram", "en"), config).text == "Ticket SB-1001, noted."
    # The top-level templates are the desk's default language's: a Chinese customer gets the catalogue's.
    assert acknowledgement(created("telegram", "zh-Hans"), config).text.startswith("谢谢！您的请求已登记为工单")
    assert acknowledgement(created("slack", "zh-Hans"), config).text == "工单 SB-1001 已收到。"


def test_the_config_refuses_languages_without_a_catalogue(tmp_path):
    text = EXAMPLE_CONFIG.read_text().replace("    zh-Hans:\n      telegram:", "    tlh:\n      telegram:")
    text = text.replace("    language: en                #", "    language: fr                #")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    problems = "\n".join(raised.value.problems)
    assert "teams.0.language" in problems and "no catalogue for 'fr'" in problems
    assert "acknowledgements.languages.tlh" in problems


def test_dates_are_shown_in_the_readers_time_zone_and_language():
    moment = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    assert i18n.format_datetime(moment, "zh-Hans", "Asia/Shanghai") == "2026年12月2日 07:30:00"
    assert i18n.format_datetime(moment, "en", "Europe/Berlin") == "Dec 2, 2026, 12:30:00\u202fAM"
    assert i18n.format_datetime(moment, "en", "Not/AZone") == "Dec 1, 2026, 11:30:00\u202fPM UTC"


def chinese_team_config() -> DeskConfig:
    data = CONFIG.model_dump()
    data["teams"][0]["language"] = "zh-Hans"
    return DeskConfig.model_validate(data)


def test_the_ticket_card_is_in_the_teams_language_with_the_same_action_ids():
    state = card_state(
        {"id": "SB-1001", "status": "open", "priority": "urgent", "tags": '["a"]', "escalation_level": "2"},
        team_name="Customer Support",
    )
    chinese, english = ticket_card(state, i18n.texts("zh-Hans")), ticket_card(state)
    labels = [
        element["text"]["text"]
        for block in chinese.blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]
    assert labels == ["认领", "回复", "备注", "转派", "待客户回复", "解决", "升级", "重新打开"]
    assert [e["action_id"] for b in chinese.blocks if b["type"] == "actions" for e in b["elements"]] == [
        e["action_id"] for b in english.blocks if b["type"] == "actions" for e in b["elements"]
    ]
    fields = [field["text"] for field in chinese.blocks[1]["fields"]]
    assert "*状态*\n:large_green_circle: 处理中" in fields and "*优先级*\n:rotating_light: 紧急" in fields
    assert "*升级*\n第 2 级" in fields and "*负责人*\n未分配（在 Customer Support 的队列中）" in fields
    assert "*Status*\n:large_green_circle: Open" in [field["text"] for field in english.blocks[1]["fields"]]


def test_a_teams_thread_posts_are_in_its_language():
    config = chinese_team_config()
    assert config.team_locale(config.team("support")) == "zh-Hans"
    assert config.team_locale(config.team("payments")) == "en"
    [announcement, dm] = plan(assigned("support"), NotifierView(), config)
    assert "已分配给 <@U0BEN>" in announcement.text and dm.text.startswith("您有一个新工单：*SB-1001*")
    [english, _] = plan(assigned("payments"), NotifierView(), config)
    assert "assigned to <@U0BEN>" in english.text
    # The customer is still written to in their own language.
    assert acknowledgement(created("telegram", "en"), config).text.startswith("Thanks!")


def assigned(team: str) -> TicketAssigned:
    return TicketAssigned(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        ticket_id="SB-1001",
        team=team,
        agent_id="ben",
        agent_name="Ben Okafor",
        slack_user_id="U0BEN",
        subject="无法登录",
        contact=ContactSummary(contact_id="c_1", name="李雷"),
    )


@given(st.text(max_size=200))
def test_negotiation_never_raises_and_answers_a_catalogue_or_nothing(header):
    assert i18n.negotiate(header) in (None, *i18n.available())
    assert i18n.hint(header) is None or len(i18n.hint(header)) <= 64


def test_a_chat_session_keeps_the_pick_the_browsers_hint_and_a_known_time_zone():
    hello = Hello(type="hello", language="zh-CN", timezone="Asia/Shanghai")
    assert language_fields(hello, "de-DE,en-US;q=0.8") == {
        "language": "zh-Hans",
        "language_hint": "en-US",
        "timezone": "Asia/Shanghai",
    }
    assert language_fields(Hello(type="hello", language="tlh", timezone="Mars/Olympus"), None) == {}


def test_form_submissions_take_an_offered_language_and_drop_an_unknown_time_zone():
    base = {"name": "Li", "email": "li@example.com", "subject": "订单", "message": "你好"}
    submission = FormSubmission.model_validate({**base, "language": "zh-hans", "timezone": "Nowhere/City"})
    assert (submission.language, submission.timezone) == ("zh-Hans", None)
    with pytest.raises(ValidationError) as refused:
        FormSubmission.model_validate({**base, "language": "tlh", "name": ""})
    errors = {error["field"]: error for error in field_errors(refused.value, "zh-Hans")}
    assert errors["language"]["message"] == "不提供此语言。" and errors["language"]["type"] == "value_error"
    assert errors["name"]["message"] == "此项为必填项。"
    too_long = {error["field"]: error for error in field_errors(_refusal({**base, "subject": "x" * 999}), "en")}
    assert too_long["subject"]["message"] == "Please keep this under 998 characters."
    assert too_long["subject"]["type"] == "string_too_long"


def _refusal(fields: dict) -> ValidationError:
    with pytest.raises(ValidationError) as refused:
        FormSubmission.model_validate(fields)
    return refused.value


def test_the_answer_language_of_a_submission():
    assert locale_of({"language": "en"}, "zh-CN", "zh-Hans") == "en"
    assert locale_of({"language": 3}, "zh-CN,en;q=0.5", "en") == "zh-Hans"
    assert locale_of({}, "fr", "zh-Hans") == "zh-Hans"
    assert locale_of({"language": "tlh"}, None, "zh-Hans") == "zh-Hans"


def test_a_chinese_teams_agents_get_chinese_modals_and_answers():
    config = chinese_team_config()
    ben = agent_texts("ben", config)  # support, the first team of ben
    assert ben.locale == "zh-Hans" and agent_texts(None, config).locale == "en"
    modal = text_modal("reply", "SB-1001", ben)
    assert (modal["title"]["text"], modal["submit"]["text"], modal["close"]["text"]) == ("回复 SB-1001", "发送", "取消")
    reassign = reassign_modal("SB-1001", config.team("support"), config, ben)
    assert "Customer Support（队列）" in [
        option["text"]["text"] for option in reassign["blocks"][0]["element"]["options"]
    ]
    assert help_answer(parse("help"), ben).startswith("*Switchboard* — `/sb` 加上：")
    assert availability_answer(False, ben) == "您已设为离开：在 `/sb back` 之前不会再给您分配新工单。"
