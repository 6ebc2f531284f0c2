"""The knowledge base in pure code: articles and their import, BM25 search over the 20-article corpus in English
and Chinese, the router's suggestions, the help centre's Markdown, the card, the customer's message, Slack."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from html import escape
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.knowledge.articles import (
    SLUG,
    Article,
    ArticleError,
    KnownArticle,
    import_events,
    parse_article,
    slugify,
)
from services.knowledge.deflection import DeflectionTokens, deflected_command
from services.knowledge.importer import read_folder
from services.knowledge.pages import article_page, deflection_page, index_page, not_found_page, render_markdown
from services.knowledge.search import KnowledgeIndex
from services.knowledge.slack import article_modal, article_of_button, saved_article
from services.notifier.cards import card_state, ticket_card
from services.notifier.plan import NotifierView, TicketContext, plan
from services.router.decide import RouterView, decide_inbound, decide_lifecycle
from services.router.detection import text_language
from shared import i18n
from shared.config import load_config
from shared.events import (
    ArticlePublished,
    ArticleRemoved,
    ArticleSuggestion,
    InboundMessage,
    ReplyRoute,
    Sender,
    StatusChanged,
    TicketCreated,
    TicketSuggestions,
)
from shared.settings import EXAMPLE_CONFIG
from shared.signed_links import InvalidToken

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "kb"
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
BASE = load_config(EXAMPLE_CONFIG)
CONFIG = BASE.model_copy(
    update={
        "languages": ["en", "zh"],
        "knowledge_base": BASE.knowledge_base.model_copy(update={"deflect_channels": ["email"]}),
    }
)
ARTICLES = read_folder(CORPUS, "en")
INDEX = KnowledgeIndex(ARTICLES)


def test_the_corpus_holds_twenty_articles_ten_in_english_and_ten_in_chinese():
    assert len(ARTICLES) == 20
    assert sorted(article.language for article in ARTICLES) == ["en"] * 10 + ["zh"] * 10


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("我忘记密码了，怎么办？", "reset-password-zh"),
        ("怎么申请退款？钱什么时候到账", "refunds-zh"),
        ("发票怎么下载", "invoices-zh"),
        ("我想取消订单", "cancel-order-zh"),
        ("包裹到哪里了？物流单号在哪里看", "shipping-times-zh"),
        ("I forgot my password and cannot sign in", "reset-password"),
        ("When will my refund reach my bank?", "refunds"),
        ("How do I download an invoice with our VAT number?", "invoices"),
        ("Please cancel my order", "cancel-order"),
        ("Where is my parcel? I have no tracking number", "shipping-times"),
    ],
)
def test_a_question_retrieves_the_article_in_its_own_language_first(question, expected):
    language = text_language(question, ["en", "zh"])
    hits = INDEX.search(question, language)
    assert hits[0].slug == expected
    assert hits[0].language == ("zh" if expected.endswith("-zh") else "en")
    # Results in the question's language come before any other language's.
    languages = [hit.language for hit in hits]
    assert languages == sorted(languages, key=lambda each: each != language)


def test_the_title_weighs_more_than_the_body():
    articles = [
        Article("in-body", "Account settings", "en", "Here you can also change the delivery address of an order."),
        Article("in-title", "Delivery address", "en", "Open the order and press Edit."),
    ]
    assert [hit.slug for hit in KnowledgeIndex(articles).search("delivery address", "en")] == ["in-title", "in-body"]


def test_a_language_given_restricts_the_results_and_nothing_matches_nothing():
    assert {hit.language for hit in INDEX.search("refund 退款", "zh", only_language=True)} == {"zh"}
    assert INDEX.search("the and of", "en") == []
    assert INDEX.search("", "en") == []
    assert INDEX.search("xylophone", "en") == []


def test_an_article_reads_its_front_matter_and_falls_back_to_the_desk_language():
    article = parse_article("Refund Policy", "---\ntitle: Refunds\ntags: [billing]\nteam: billing\n---\nBody.\n", "en")
    assert article == Article("refund-policy", "Refunds", "en", "Body.", ("billing",), "billing")
    assert parse_article("x", "---\ntitle: 退款\nlanguage: zh-Hans\nslug: tui-kuan\n---\n正文", "en").language == "zh"
    for broken in ("no front matter", "---\ntitle: [\n---\n", "---\n- a list\n---\n", "---\ntitle: x\ntags: 3\n---\n"):
        with pytest.raises(ArticleError):
            parse_article("x", broken, "en")


@given(st.text())
def test_a_slug_is_url_safe_or_empty(text):
    slug = slugify(text)
    assert slug == "" or SLUG.match(slug)


@given(st.text(max_size=300))
def test_any_file_is_an_article_or_an_article_error(text):
    try:
        article = parse_article("page", text, "en")
    except ArticleError:
        return
    assert article.title and SLUG.match(article.slug)


def test_import_publishes_only_what_changed_and_removes_only_the_folders_articles():
    first = import_events(ARTICLES, {}, NOW)
    assert len(first) == 20 and all(isinstance(event, ArticlePublished) for event in first)
    known = {event.slug: KnownArticle(event.content_hash, "folder") for event in first}
    assert import_events(ARTICLES, known, NOW) == []
    changed = [Article(a.slug, a.title, a.language, a.body + " More.", a.tags, a.team) for a in ARTICLES[:1]]
    known["saved-in-slack"] = KnownArticle("0" * 64, "slack")
    events = import_events([*changed, *ARTICLES[2:]], known, NOW)
    assert [(type(event), event.slug) for event in events] == [
        (ArticlePublished, ARTICLES[0].slug),
        (ArticleRemoved, ARTICLES[1].slug),
    ]
    # The same folder imported twice (two intake instances) publishes the same event IDs.
    assert [event.event_id for event in import_events(ARTICLES, {}, NOW)] == [event.event_id for event in first]


def inbound(subject: str, text: str, channel: str = "email") -> InboundMessage:
    route = ReplyRoute(channel=channel, address="ana@example.com") if channel == "email" else None
    return InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=NOW,
        channel=channel,
        channel_message_id=f"<{uuid.uuid4()}@mail.example>",
        source="smtp",
        sender=Sender(name="Ana", email="ana@example.com"),
        subject=subject,
        text=text,
        reply_route=route,
    )


def suggestions_of(message: InboundMessage, config=CONFIG) -> TicketSuggestions | None:
    events = decide_inbound(message, RouterView(knowledge=INDEX), config, NOW).events
    found = [event for event in events if isinstance(event, TicketSuggestions)]
    assert len(found) <= 1
    return found[0] if found else None


def test_a_new_ticket_gets_at_most_three_articles_in_its_language_above_the_threshold():
    suggested = suggestions_of(inbound("Refund", "I want a refund for my order, when does the money reach my bank?"))
    assert suggested is not None
    assert suggested.articles[0].slug == "refunds"
    assert len(suggested.articles) <= 3
    assert all(a.language == "en" and a.score >= CONFIG.knowledge_base.suggest_at for a in suggested.articles)
    # An email ticket on a deflecting channel: the customer is sent them.
    assert suggested.deflect_route == ReplyRoute(channel="email", address="ana@example.com")
    chinese = suggestions_of(inbound("退款", "我想申请退款，钱什么时候到账？"))
    assert chinese is not None and chinese.articles[0].slug == "refunds-zh"


def test_no_suggestion_without_articles_below_the_threshold_or_when_turned_off():
    assert suggestions_of(inbound("Hello", "xylophone quartet")) is None
    message = inbound("Refund", "refund please")
    assert decide_inbound(message, RouterView(knowledge=None), CONFIG, NOW).events
    assert not any(isinstance(e, TicketSuggestions) for e in decide_inbound(message, RouterView(), CONFIG, NOW).events)
    off = CONFIG.model_copy(update={"knowledge_base": CONFIG.knowledge_base.model_copy(update={"suggestions": 0})})
    assert suggestions_of(message, off) is None
    strict = CONFIG.model_copy(update={"knowledge_base": CONFIG.knowledge_base.model_copy(update={"suggest_at": 99})})
    assert suggestions_of(message, strict) is None


def suggestions_event(route: ReplyRoute | None = None) -> TicketSuggestions:
    return TicketSuggestions(
        event_id=uuid.uuid4(),
        occurred_at=NOW,
        ticket_id="SB-1001",
        articles=[ArticleSuggestion(slug="refunds", title="How refunds work", language="en", score=3.2)],
        deflect_route=route,
    )


def test_a_deflecting_channel_sends_the_articles_with_a_this_solved_it_link():
    view = NotifierView(article_url=lambda slug: f"https://help.example/kb/{slug}", deflection_url=lambda t: f"X/{t}")
    route = ReplyRoute(channel="email", address="ana@example.com")
    [delivery] = plan(suggestions_event(route), view, CONFIG)
    assert delivery.purpose == "suggestions" and delivery.target == "email:ana@example.com"
    assert "How refunds work: https://help.example/kb/refunds" in delivery.text and "X/SB-1001?lang=en" in delivery.text
    assert plan(suggestions_event(None), view, CONFIG) == []


def test_suggested_articles_are_written_in_the_tickets_customer_language():
    """Issue 15: the ticket's customer language (the read model's), else the desk's default; plural by count."""
    view = NotifierView(article_url=lambda slug: f"https://help.example/kb/{slug}", deflection_url=lambda t: f"X/{t}")
    route = ReplyRoute(channel="email", address="ana@example.com")
    [english] = plan(suggestions_event(route), view, CONFIG)
    assert english.text == (
        "While you wait for an agent: this article may answer your question.\n"
        "- How refunds work: https://help.example/kb/refunds?lang=en\n\n"
        "If it answered your question, tell us here and we close ticket SB-1001: X/SB-1001?lang=en"
    )
    assert english.language == "en"
    view.tickets["SB-1001"] = TicketContext(customer_language="zh-Hans")
    two = suggestions_event(route).model_copy(
        update={
            "articles": [
                ArticleSuggestion(slug="refunds-zh", title="退款说明", language="zh", score=3.2),
                ArticleSuggestion(slug="invoice-zh", title="下载发票", language="zh", score=2.8),
            ]
        }
    )
    [chinese] = plan(two, view, CONFIG)
    assert chinese.text == (
        "在等待客服人员期间，以下 2 篇文章或许能解答您的问题。\n"
        "- 退款说明：https://help.example/kb/refunds-zh?lang=zh-Hans\n"
        "- 下载发票：https://help.example/kb/invoice-zh?lang=zh-Hans\n\n"
        "如果文章已经解决了您的问题，请通过此链接告诉我们，我们将关闭工单 SB-1001：X/SB-1001?lang=zh-Hans"
    )
    assert chinese.language == "zh-Hans" and "While you wait" not in chinese.text
    [plural] = plan(two, NotifierView(article_url=view.article_url, deflection_url=view.deflection_url), CONFIG)
    assert plural.text.startswith("While you wait for an agent: these 2 articles may answer your question.")
    assert "If one of them answered it, tell us here" in plural.text


def test_the_help_centre_and_solved_pages_are_in_the_readers_language_and_articles_as_written():
    chinese, english = i18n.texts("zh-Hans"), i18n.texts("en")
    article = ARTICLES[0]
    page = article_page(article, chinese)
    assert '<html lang="zh-Hans">' in page and "全部文章" in page and "仍未解决？" in page and "联系客服" in page
    assert f'<article lang="{article.language}">' in page and "All articles" not in page
    assert escape(article.title) in page
    listing = index_page(ARTICLES, chinese, "xylophone", [])
    assert "帮助中心" in listing and "搜索帮助中心" in listing and "没有匹配的文章。" in listing
    assert "“xylophone”的搜索结果：0 篇" in listing and "Help centre" not in listing
    assert "1 result for “x&lt;b&gt;”" in index_page([], english, "x<b>", INDEX.search("refund", "en", limit=1))
    kept = index_page(ARTICLES, chinese, "退款", INDEX.search("退款", "zh", limit=1), kept="zh-Hans")
    assert '<input type="hidden" name="lang" value="zh-Hans">' in kept and 'href="/kb/refunds-zh?lang=zh-Hans"' in kept
    assert "“退款”的搜索结果：1 篇" in kept and 'href="/kb?lang=' not in listing
    assert "There are no articles yet." in index_page([], english) and "目前还没有文章。" in index_page([], chinese)
    assert "没有这篇文章" in not_found_page(chinese) and '<html lang="en">' in not_found_page(english)
    ask = deflection_page("SB-1009", chinese)
    assert '<html lang="zh-Hans">' in ask and '确认后，我们会将工单 <strong class="ticket-id">SB-1009</strong>' in ask
    assert "是的，问题已解决" in ask and "很高兴能帮到您！" in deflection_page("SB-1009", chinese, done=True)
    assert "Did an article solve it?" in deflection_page("SB-1009", english)


def test_the_card_shows_suggestions_with_send_buttons_and_a_solved_ticket_offers_save_as_article():
    fields = {"id": "SB-1001", "status": "open"}
    fields["suggestions"] = '[{"slug": "refunds", "title": "How refunds work", "language": "en", "score": 3.2}]'
    card = ticket_card(card_state(fields))
    accessories = [block["accessory"] for block in card.blocks if "accessory" in block]
    assert [(a["action_id"], a["value"]) for a in accessories] == [("sb_send_article", "SB-1001 refunds")]
    assert "sb_save_article" not in str(card.blocks)
    solved = ticket_card(card_state({**fields, "status": "solved"}))
    assert "sb_send_article" not in str(solved.blocks) and "sb_save_article" in str(solved.blocks)


def test_markdown_is_rendered_without_scripts_or_javascript_links():
    html = render_markdown("# Hi\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [ok](https://example.com)")
    assert "<h1>Hi</h1>" in html and '<a href="https://example.com"' in html
    assert "<script" not in html and 'href="javascript' not in html


def test_slack_buttons_and_the_save_as_article_modal():
    assert article_of_button("SB-1001 refunds") == ("SB-1001", "refunds")
    assert article_of_button("SB-1001") is None and article_of_button("SB-1001 ../x") is None
    values = {
        "title": {"title": {"value": "Refunds for damaged items"}},
        "language": {"language": {"value": "EN"}},
        "body": {"body": {"value": "We refund shipping too."}},
    }
    saved = saved_article(values, "SB-1001", "ana", NOW)
    assert isinstance(saved, ArticlePublished)
    assert (saved.slug, saved.language, saved.source, saved.actor, saved.ticket_id) == (
        "refunds-for-damaged-items",
        "en",
        "slack",
        "ana",
        "SB-1001",
    )
    assert saved_article({}, "SB-1001", "ana", NOW) == {
        "title": "Give the article a title.",
        "language": "A language code: en, zh …",
        "body": "Write the article.",
    }


def _modal_texts(view: dict) -> tuple[str, ...]:
    labels = tuple(block["label"]["text"] for block in view["blocks"])
    return (view["title"]["text"], view["submit"]["text"], view["close"]["text"], *labels)


def test_the_save_as_article_modal_speaks_the_agents_language():
    english = article_modal("SB-1001", "Refunds", "en", "We refund shipping too.")
    assert _modal_texts(english) == (
        "Save as article",
        "Publish",
        "Cancel",
        "Title",
        "Language (en, zh …)",
        "Article (Markdown)",
    )
    chinese = article_modal("SB-1001", "退款", "zh", "运费也退。", i18n.texts("zh-Hans"))
    assert _modal_texts(chinese) == ("保存为文章", "发布", "取消", "标题", "语言（en、zh …）", "文章（Markdown）")
    # Only the texts change: the callback, the ticket and what is prefilled are the same in any language.
    assert {key: value for key, value in chinese.items() if key not in {"title", "submit", "close", "blocks"}} == {
        "type": "modal",
        "callback_id": "sb_article_modal",
        "private_metadata": "SB-1001",
    }
    initial = {block["block_id"]: block["element"]["initial_value"] for block in chinese["blocks"]}
    assert initial == {"title": "退款", "language": "zh", "body": "运费也退。"}
    assert saved_article({}, "SB-1001", "ana", NOW, i18n.texts("zh-Hans")) == {
        "title": "请为文章写一个标题。",
        "language": "请填写语言代码：en、zh …",
        "body": "请写下文章内容。",
    }


def test_a_deflection_token_names_its_ticket_and_the_customer_may_solve_it_as_deflected():
    tokens = DeflectionTokens("secret")
    assert tokens.read(tokens.issue("SB-1001")) == "SB-1001"
    with pytest.raises(InvalidToken):
        DeflectionTokens("other").read(tokens.issue("SB-1001"))
    view = RouterView()
    view.absorb(decide_inbound(inbound("Refund", "refund"), view, CONFIG, NOW).events)
    [changed] = decide_lifecycle(deflected_command("SB-1001", NOW), view.tickets, CONFIG, NOW)
    assert isinstance(changed, StatusChanged)
    assert (changed.to_status, changed.actor, changed.reason, changed.csat_route) == (
        "solved",
        "customer",
        "deflected",
        None,
    )


def test_the_ticket_created_event_is_followed_by_its_suggestions():
    events = decide_inbound(inbound("Refund", "refund my order"), RouterView(knowledge=INDEX), CONFIG, NOW).events
    kinds = [type(event) for event in events]
    assert kinds.index(TicketCreated) < kinds.index(TicketSuggestions)


def test_a_form_ticket_deflects_when_form_or_email_is_listed_and_not_otherwise():
    message = InboundMessage.received(
        message_id=uuid.uuid4(),
        ticket_id="SB-1001",
        received_at=NOW,
        channel="form",
        channel_message_id="form:1",
        source="contact",
        sender=Sender(name="Ana", email="ana@example.com"),
        subject="Refund",
        text="I want a refund for my order",
        reply_route=ReplyRoute(channel="email", address="ana@example.com"),
    )
    for channels, deflects in ((["form"], True), (["email"], True), (["telegram"], False)):
        settings = CONFIG.knowledge_base.model_copy(update={"deflect_channels": channels})
        suggested = suggestions_of(message, CONFIG.model_copy(update={"knowledge_base": settings}))
        assert suggested is not None and (suggested.deflect_route is not None) == deflects
