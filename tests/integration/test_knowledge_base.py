"""The knowledge base on the real broker and Redis: the folder imported as article events (once), the search
API and the help centre, replay rebuilding it from the articles topic, suggestions on a new ticket's Slack
card with "Send to customer", "Save as article" from a solved ticket, and "this solved it" (deflection)."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import yaml
from slack_sdk.signature import SignatureVerifier

from services.intake.http import create_app
from services.intake.slack_agents import NOT_AN_AGENT
from services.knowledge.store import ARTICLES_KEY, CHANGED_KEY, VERSION_KEY, ArticleStore
from shared import i18n
from shared.config import load_config
from shared.events import ArticlePublished
from shared.redis_client import connect_redis
from shared.settings import EXAMPLE_CONFIG, Settings
from shared.topics import ARTICLES, TICKETS, Topics
from switchboard.replay import replay_all
from tests.conftest import API_TOKEN, SLACK_SIGNING_SECRET
from tests.integration.test_replies import post_form
from tests.integration.test_slack_agents import ANA, button, submission
from tests.support import ServiceProcesses, decoded, in_process_client, read_topic, topic_size, wait_for_ticket

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "kb"
REFUND_FORM = {
    "name": "Ana",
    "email": "ana@example.com",
    "subject": "Refund for my order",
    "message": "I want a refund. When does the money reach my bank?",
}


@pytest.fixture
def kb_config(tmp_path: Path) -> Path:
    """The example config with a copy of the 20-article corpus as its knowledge base, deflecting email."""
    folder = tmp_path / "kb"
    shutil.copytree(CORPUS, folder)
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["knowledge_base"] = {"path": str(folder), "deflect_channels": ["email"]}
    path = tmp_path / "kb-config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def articles_topic(settings: Settings) -> str:
    return Topics(settings.topic_prefix).name(ARTICLES)


async def test_the_folder_is_imported_once_searched_served_and_watched(settings, kb_config, tmp_path):
    settings = settings.model_copy(update={"config": kb_config})
    async with in_process_client(create_app(settings)) as client:
        records = await read_topic(settings.kafka_bootstrap, articles_topic(settings), at_least=20)
        events = [ArticlePublished.model_validate_json(record.value) for record in records]
        assert len(events) == 20 and all(
            record.key.decode() == e.slug for record, e in zip(records, events, strict=True)
        )

        found = (await client.get("/v1/kb/search", params={"q": "我忘记密码了，怎么重置？"})).json()["results"]
        assert found[0]["slug"] == "reset-password-zh" and found[0]["language"] == "zh"
        assert found[0]["url"] == f"{settings.public_base_url()}/kb/reset-password-zh"
        assert set(found[0]) == {"slug", "title", "language", "score", "url"}
        english = (await client.get("/v1/kb/search", params={"q": "How do I reset my password?"})).json()["results"]
        assert english[0]["slug"] == "reset-password"
        scores = [result["score"] for result in english if result["language"] == "en"]
        assert scores == sorted(scores, reverse=True)
        only = (await client.get("/v1/kb/search", params={"q": "password 密码", "language": "zh"})).json()["results"]
        assert only and {result["language"] for result in only} == {"zh"}
        assert (await client.get("/v1/kb/search", params={"q": ""})).json() == {"results": []}

        listing = await client.get("/kb")
        assert listing.status_code == 200 and listing.text.count('href="/kb/') == 20
        assert 'name="viewport"' in listing.text and "<script" not in listing.text
        results = await client.get("/kb", params={"q": "refund"})
        assert results.text.index('href="/kb/refunds"') < results.text.index("<h2 lang=")  # results before the list
        page = await client.get("/kb/refunds")
        assert page.status_code == 200 and "<h1>How refunds work</h1>" in page.text
        assert "<strong>Request a refund</strong>" in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        assert (await client.get("/kb/no-such-article")).status_code == 404
        customer_page = await client.get("/")
        assert 'href="/kb"' in customer_page.text

        # A changed file and a deleted one: the watch publishes exactly those two changes.
        folder = tmp_path / "kb"
        changed = folder / "en" / "refunds.md"
        changed.write_text(changed.read_text().replace("30 days", "60 days"))
        (folder / "en" / "two-factor.md").unlink()
        records = await read_topic(settings.kafka_bootstrap, articles_topic(settings), at_least=22, timeout=60)
        later = [json.loads(record.value) for record in records[20:]]
        assert sorted((event["type"], event["slug"]) for event in later) == [
            ("article.published", "refunds"),
            ("article.removed", "two-factor"),
        ]
        assert "60 days" in (await client.get("/kb/refunds")).text
        assert (await client.get("/kb/two-factor")).status_code == 404

    # Started again on the same folder: nothing changed, nothing published.
    async with in_process_client(create_app(settings)):
        assert await topic_size(settings.kafka_bootstrap, articles_topic(settings)) == 22


async def test_replay_rebuilds_the_knowledge_base_and_its_search_from_the_articles_topic(settings, kb_config):
    settings = settings.model_copy(update={"config": kb_config})
    async with in_process_client(create_app(settings)):
        pass
    redis = connect_redis(settings.redis_url)
    try:
        store = ArticleStore(redis)
        before = await store.articles()
        assert len(before) == 20
        await redis.delete(ARTICLES_KEY, CHANGED_KEY, VERSION_KEY)
        report = await replay_all(settings.kafka_bootstrap, redis, settings.topic_prefix, config=load_config(kb_config))
        assert report.counts["article changes"] == 20
        assert await store.articles() == before
    finally:
        await redis.aclose()
    # The help centre searches the rebuilt knowledge base (its import publishes nothing new).
    async with in_process_client(create_app(settings)) as client:
        found = (await client.get("/v1/kb/search", params={"q": "发票怎么下载"})).json()["results"]
        assert found[0]["slug"] == "invoices-zh"
        assert await topic_size(settings.kafka_bootstrap, articles_topic(settings)) == 20


def interact(base_url: str, payload: dict) -> httpx.Response:
    """Posts a Slack interaction to a running intake-http, signed as Slack does."""
    body = urlencode({"payload": json.dumps(payload)})
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SLACK_SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature,
    }
    return httpx.post(f"{base_url}/v1/slack/events", content=body, headers=headers, timeout=30)


def card_buttons(call) -> list[tuple[str, str]]:
    return [
        (element["action_id"], element["value"])
        for block in call.args.get("blocks") or []
        for element in [block.get("accessory"), *block.get("elements", [])]
        if isinstance(element, dict) and element.get("type") == "button"
    ]


async def test_a_new_ticket_gets_suggestions_on_its_card_and_send_to_customer_delivers_the_article(
    services: ServiceProcesses, settings, kb_config, fake_slack, smtp_sink
):
    for name in ("router", "notifier"):
        services.start(name, SWITCHBOARD_CONFIG=str(kb_config))
    base_url = services.start_http(SWITCHBOARD_CONFIG=str(kb_config))
    ticket_id = post_form(base_url, REFUND_FORM)

    records = await read_topic(
        settings.kafka_bootstrap,
        Topics(settings.topic_prefix).name(TICKETS),
        at_least=1,
        until=lambda records: any(e["type"] == "ticket.suggestions" for e in decoded(records)),
    )
    [suggested] = [e for e in decoded(records) if e["type"] == "ticket.suggestions"]
    assert suggested["ticket_id"] == ticket_id
    assert suggested["articles"][0]["slug"] == "refunds" and len(suggested["articles"]) <= 3

    [card] = await fake_slack.wait_for_calls(
        "chat.postMessage",
        predicate=lambda c: (
            c.args["channel"].startswith("C") and ("sb_send_article", f"{ticket_id} refunds") in card_buttons(c)
        ),
    )
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["suggestions"])
    assert ticket["suggestions"][0]["slug"] == "refunds"

    press = button("sb_send_article", ANA, f"{ticket_id} refunds")
    press["container"]["message_ts"] = press["message"]["ts"] = card.response["ts"]
    press["container"]["channel_id"] = press["channel"]["id"] = card.args["channel"]
    assert interact(base_url, press).status_code == 200
    [reply] = smtp_sink.wait_for(
        lambda mail: "How refunds work" in mail.message.get_content() and not mail.message["Auto-Submitted"]
    )
    assert reply.recipients == ["ana@example.com"]
    assert f"{settings.public_base_url()}/kb/refunds" in reply.message.get_content()
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: len(t["messages"]) == 2)
    assert ticket["messages"][1]["author"] == "agent" and ticket["messages"][1]["agent_id"] == "ana"


async def test_this_solved_it_solves_the_ticket_as_deflected(
    services: ServiceProcesses, settings, kb_config, fake_slack, smtp_sink
):
    for name in ("router", "notifier"):
        services.start(name, SWITCHBOARD_CONFIG=str(kb_config))
    base_url = services.start_http(SWITCHBOARD_CONFIG=str(kb_config))
    ticket_id = post_form(base_url, REFUND_FORM)

    [mail] = smtp_sink.wait_for(lambda mail: "/kb/solved/" in mail.message.get_content())
    text = mail.message.get_content()
    assert f"{settings.public_base_url()}/kb/refunds" in text
    link = re.search(r"(http\S+/kb/solved/\S+)", text).group(1)
    path = link.removeprefix(settings.public_base_url())
    confirm = httpx.get(f"{base_url}{path}", timeout=30)
    assert confirm.status_code == 200 and "<form" in confirm.text
    # Following the link alone (a mail scanner) solves nothing; the customer's confirmation does.
    assert wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: True)["status"] != "solved"
    assert httpx.post(f"{base_url}{path}", timeout=30).status_code == 200
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["status"] == "solved")
    [solved] = [
        entry for entry in ticket["history"] if entry["type"] == "ticket.status_changed" and entry["to"] == "solved"
    ]
    assert (solved["actor"], solved["reason"]) == ("customer", "deflected")
    assert httpx.post(f"{base_url}/kb/solved/forged-token", timeout=30).status_code == 404


async def test_a_chinese_customer_gets_chinese_suggestions_solved_pages_and_help_centre(
    services: ServiceProcesses, settings, kb_config, fake_slack, smtp_sink
):
    """Issue 15: the suggestions mail and the "this solved it" pages in the ticket's language, the help centre's
    chrome in the browser's (or, with none, the article's) and the articles as written."""
    for name in ("router", "notifier"):
        services.start(name, SWITCHBOARD_CONFIG=str(kb_config))
    base_url = services.start_http(SWITCHBOARD_CONFIG=str(kb_config))
    form = {"name": "李", "email": "li@example.com", "subject": "退款", "message": "我想申请退款，钱什么时候到账？"}
    ticket_id = post_form(base_url, {**form, "language": "zh-Hans"})

    [mail] = smtp_sink.wait_for(lambda mail: "/kb/solved/" in mail.message.get_content())
    text = mail.message.get_content()
    assert "在等待客服人员期间" in text and f"我们将关闭工单 {ticket_id}" in text and "While you wait" not in text
    assert mail.message["Content-Language"] == "zh-Hans"
    # The article's link names the ticket's language too, and the help centre keeps it on its own links.
    article_link = re.search(r"(http\S+/kb/refunds-zh\S*)", text).group(1)
    assert article_link.endswith("?lang=zh-Hans")
    shown = httpx.get(
        f"{base_url}{article_link.removeprefix(settings.public_base_url())}",
        headers={"Accept-Language": "en"},
        timeout=30,
    )
    assert '<html lang="zh-Hans">' in shown.text and '<a href="/kb?lang=zh-Hans">全部文章</a>' in shown.text
    link = re.search(r"(http\S+/kb/solved/\S+)", text).group(1)
    assert link.endswith("?lang=zh-Hans")
    # The ticket's language wins over the browser's, with or without the link's ?lang=.
    path = link.removeprefix(settings.public_base_url()).partition("?")[0]
    confirm = httpx.get(f"{base_url}{path}", headers={"Accept-Language": "en-US,en"}, timeout=30)
    assert confirm.status_code == 200 and '<html lang="zh-Hans">' in confirm.text
    assert "文章解决了您的问题吗？" in confirm.text and "Did an article" not in confirm.text
    done = httpx.post(f"{base_url}{path}", timeout=30)
    assert done.status_code == 200 and "很高兴能帮到您！" in done.text and '<html lang="zh-Hans">' in done.text
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["status"] == "solved")
    # A link that names no ticket: Accept-Language.
    forged = httpx.get(f"{base_url}/kb/solved/forged", headers={"Accept-Language": "zh-CN"}, timeout=30)
    assert forged.status_code == 404 and "此链接无效" in forged.text

    listing = httpx.get(f"{base_url}/kb", headers={"Accept-Language": "zh-CN,zh;q=0.9"}, timeout=30)
    assert '<html lang="zh-Hans">' in listing.text and "<h1>帮助中心</h1>" in listing.text
    assert "搜索帮助中心" in listing.text and "Help centre" not in listing.text
    nothing = httpx.get(f"{base_url}/kb", params={"q": "xylophone"}, headers={"Accept-Language": "zh-CN"}, timeout=30)
    assert "没有匹配的文章。" in nothing.text
    article = httpx.get(f"{base_url}/kb/refunds", headers={"Accept-Language": "zh-CN"}, timeout=30)
    assert "全部文章" in article.text and '<article lang="en">' in article.text and "How refunds work" in article.text
    # No Accept-Language: a Chinese article's chrome is Chinese; ?lang= overrides both.
    assert "仍未解决？" in httpx.get(f"{base_url}/kb/refunds-zh", timeout=30).text
    english = httpx.get(
        f"{base_url}/kb/refunds-zh", params={"lang": "en"}, headers={"Accept-Language": "zh-CN"}, timeout=30
    )
    assert '<html lang="en">' in english.text and '<a href="/kb?lang=en">All articles</a>' in english.text
    missing = httpx.get(f"{base_url}/kb/no-such-article", headers={"Accept-Language": "zh-CN"}, timeout=30)
    assert missing.status_code == 404 and "没有这篇文章" in missing.text


async def test_save_as_article_opens_a_prefilled_modal_whose_submission_publishes_the_article(
    services: ServiceProcesses, settings, kb_config, fake_slack
):
    for name in ("router", "notifier"):
        services.start(name, SWITCHBOARD_CONFIG=str(kb_config))
    base_url = services.start_http(
        SWITCHBOARD_CONFIG=str(kb_config),
    )
    ticket_id = post_form(base_url, {**REFUND_FORM, "subject": "Damaged parcel", "message": "It arrived broken."})
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"])
    press = button("sb_reply", ANA, ticket_id, trigger_id=fake_slack.issue_trigger_id())
    assert interact(base_url, press).status_code == 200
    values = {"text": {"text": {"type": "plain_text_input", "value": "We refund damaged items in full, shipping too."}}}
    opened = (await fake_slack.wait_for_calls("views.open"))[0].response["view"]
    reply = submission("sb_reply_modal", ANA, values, view_id=opened["id"])
    reply["view"]["private_metadata"] = ticket_id
    assert interact(base_url, reply).status_code == 200
    assert interact(base_url, button("sb_resolve", ANA, ticket_id)).status_code == 200
    wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["status"] == "solved")

    press = button("sb_save_article", ANA, ticket_id, trigger_id=fake_slack.issue_trigger_id())
    assert interact(base_url, press).status_code == 200
    [_, modal] = await fake_slack.wait_for_calls("views.open", count=2)
    view = modal.response["view"]
    assert (view["callback_id"], view["private_metadata"]) == ("sb_article_modal", ticket_id)
    initial = {block["block_id"]: block["element"].get("initial_value") for block in view["blocks"]}
    assert initial == {
        "title": "Damaged parcel",
        "language": "en",
        "body": "We refund damaged items in full, shipping too.",
    }

    values = {block: {block: {"type": "plain_text_input", "value": value}} for block, value in initial.items()}
    stranger = submission("sb_article_modal", "U0STRANGER", values, view_id=view["id"])
    stranger["view"]["private_metadata"] = ticket_id
    refused = interact(base_url, stranger).json()
    assert refused == {"response_action": "errors", "errors": {"title": i18n.texts("en")(NOT_AN_AGENT)}}
    saved = submission("sb_article_modal", ANA, values, view_id=view["id"])
    saved["view"]["private_metadata"] = ticket_id
    response = interact(base_url, saved)
    assert response.status_code == 200 and not response.content
    records = await read_topic(
        settings.kafka_bootstrap,
        articles_topic(settings),
        at_least=21,
    )
    article = ArticlePublished.model_validate_json(records[-1].value)
    assert (article.slug, article.source, article.actor, article.ticket_id) == (
        "damaged-parcel",
        "slack",
        "ana",
        ticket_id,
    )
    page = httpx.get(f"{base_url}/kb/damaged-parcel", timeout=30)
    assert page.status_code == 200 and "shipping too" in page.text
