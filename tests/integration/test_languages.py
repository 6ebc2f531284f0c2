"""Customers served in their own language through the running stack (real broker and Redis; SMTP sink, fake
Telegram and Slack): the language is chosen per ticket, recorded on it, and every automatic text uses it."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import API_TOKEN
from tests.integration.test_email_stack import EmailStack, email_stack, mail, ticket_of  # noqa: F401 (fixture)
from tests.integration.test_telegram_stack import post_update
from tests.support import ServiceProcesses, switchboard_cli, wait_for_ticket

pytestmark = pytest.mark.integration


def language_of(base_url: str, ticket_id: str) -> tuple[str, str]:
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda ticket: True)
    return ticket["customer_language"], ticket["customer_language_from"]


def test_a_chinese_mail_is_acknowledged_in_chinese_and_an_english_one_in_english(
    email_stack: EmailStack,  # noqa: F811 (the fixture imported above)
    smtp_sink,
):
    email_stack.send(
        mail("无法登录", "您好，我的密码一直被拒绝，请帮我看一下是什么问题。", sender="li@customer.example")
    )
    email_stack.send(
        mail("Cannot log in", "Hello, my password is refused. Can you help?", sender="ann@customer.example")
    )

    [chinese] = smtp_sink.wait_for(lambda m: m.recipients == ["li@customer.example"])
    ticket_id = ticket_of(chinese.message)
    assert chinese.message["Subject"] == f"[{ticket_id}] 回复：无法登录"
    assert "感谢您的来信。您的请求已登记为工单" in chinese.message.get_content()
    assert chinese.message["Content-Language"] == "zh-Hans"
    assert language_of(email_stack.base_url, ticket_id) == ("zh-Hans", "detection")

    [english] = smtp_sink.wait_for(lambda m: m.recipients == ["ann@customer.example"])
    assert english.message["Subject"] == f"[{ticket_of(english.message)}] Re: Cannot log in"
    assert "Thank you for writing to us." in english.message.get_content()
    assert language_of(email_stack.base_url, ticket_of(english.message)) == ("en", "detection")


def telegram_update(update_id: int, user_id: int, text: str, language_code: str | None) -> dict:
    sender = {"id": user_id, "is_bot": False, "first_name": "Li"}
    if language_code is not None:
        sender["language_code"] = language_code
    return {
        "update_id": update_id,
        "message": {
            "message_id": 1,
            "date": 1764000000,
            "chat": {"id": user_id, "type": "private", "first_name": "Li"},
            "from": sender,
            "text": text,
        },
    }


def test_telegram_customers_are_acknowledged_in_their_clients_language_else_their_messages(
    services: ServiceProcesses, fake_telegram
):
    for name in ("router", "notifier"):
        services.start(name)
    base_url = services.start_http()

    # Telegram's language_code is the channel's hint; without one, the message's language decides.
    assert post_update(base_url, telegram_update(3001, 5101, "我的卡被扣了两次款", "zh-hans")).status_code == 200
    assert (
        post_update(base_url, telegram_update(3002, 5102, "我的订单还没有到，能帮我查一下吗？", None)).status_code
        == 200
    )
    assert post_update(base_url, telegram_update(3003, 5103, "My card was charged twice", "en")).status_code == 200

    calls = fake_telegram.wait_for_calls_sync("sendMessage", count=3, timeout=30)
    by_chat = {str(call.args["chat_id"]): call.args["text"] for call in calls}
    assert by_chat["5101"].startswith("谢谢！您的请求已登记为工单 SB-")
    assert by_chat["5102"].startswith("谢谢！您的请求已登记为工单 SB-")
    assert by_chat["5103"].startswith("Thanks! Your request is ticket SB-")
    hinted = re.search(r"SB-\d+", by_chat["5101"]).group(0)
    detected = re.search(r"SB-\d+", by_chat["5102"]).group(0)
    assert language_of(base_url, hinted) == ("zh-Hans", "hint")
    assert language_of(base_url, detected) == ("zh-Hans", "detection")


def test_a_customer_who_chose_english_on_the_page_keeps_english_when_writing_chinese(
    services: ServiceProcesses, smtp_sink, fake_slack
):
    for name in ("router", "notifier"):
        services.start(name)
    base_url = services.start_http()
    form = {
        "name": "Li Lei",
        "email": "lilei@example.com",
        "subject": "订单",
        "message": "你好，我的订单还没有到。",
        "language": "en",
        "timezone": "Asia/Shanghai",
    }
    # The browser asks for Chinese, the message is Chinese: the customer's own pick wins.
    response = httpx.post(f"{base_url}/v1/forms/contact", json=form, headers={"Accept-Language": "zh-CN,zh"})
    assert response.status_code == 202, response.text
    ticket_id = response.json()["ticket_id"]

    [ack] = smtp_sink.wait_for(lambda m: ticket_id in m.message["Subject"])
    assert ack.message["Subject"] == f"[{ticket_id}] Re: 订单"
    assert ack.message.get_content().startswith("Hello Li Lei,")
    ticket = wait_for_ticket(base_url, ticket_id, API_TOKEN, lambda t: t["assignee"] is not None)
    assert (ticket["customer_language"], ticket["customer_language_from"]) == ("en", "picked")
    assert ticket["customer_timezone"] == "Asia/Shanghai"

    # Every later automatic text too: the rating request after the agent solved the ticket.
    for command in (["reply", ticket_id, "已发货 / Shipped today."], ["status", ticket_id, "solved"]):
        result = switchboard_cli(services.settings, "ticket", *command, "--agent", "ben")
        assert result.returncode == 0, result.stderr
    [request] = smtp_sink.wait_for(lambda m: "/v1/csat/" in m.message.get_content())
    body = request.message.get_content()
    assert f"Your request {ticket_id} is resolved. How did we do?" in body and "?lang=en" in body
    link = re.search(r"http\S+/v1/csat/\S+", body).group(0)
    # The rating page opens in English although the browser asks for Chinese.
    page = httpx.get(
        link.replace(re.match(r"https?://[^/]+", link).group(0), base_url), headers={"Accept-Language": "zh-CN"}
    )
    assert '<html lang="en">' in page.text and "How did we do?" in page.text


def test_form_field_errors_are_in_the_customers_language(services: ServiceProcesses):
    base_url = services.start_http()
    empty = {"name": "", "email": "li@example", "subject": "订单", "message": "你好"}

    chinese = httpx.post(f"{base_url}/v1/forms/contact", json=empty, headers={"Accept-Language": "zh-CN"})
    english = httpx.post(
        f"{base_url}/v1/forms/contact", json={**empty, "language": "en"}, headers={"Accept-Language": "zh-CN"}
    )

    assert chinese.status_code == english.status_code == 422
    by_field = {error["field"]: error for error in chinese.json()["detail"]}
    assert by_field["name"]["message"] == "此项为必填项。" and by_field["name"]["type"] == "string_too_short"
    assert by_field["email"]["message"].startswith("请输入可以收信的电子邮件地址")
    assert by_field["email"]["type"] == "value_error"
    assert {error["message"] for error in english.json()["detail"]} == {
        "This field is required.",
        "Enter an email address that can receive mail, like name@example.com.",
    }
