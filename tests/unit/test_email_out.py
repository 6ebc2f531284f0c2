from services.notifier.email_out import build_email, is_no_reply_address, message_id_of, reply_subject
from shared.events import ReplyRoute
from shared.ids import is_our_message_id, our_message_id


def test_reply_subjects_carry_one_tag_and_one_re():
    assert reply_subject("SB-1042", "Cannot log in") == "[SB-1042] Re: Cannot log in"
    assert reply_subject("SB-1042", "RE: AW: [SB-1042] Re: Cannot log in") == "[SB-1042] Re: Cannot log in"
    assert reply_subject("SB-1042", None) == "[SB-1042]"


def test_machines_and_list_managers_get_no_automatic_answer():
    for address in [
        "no-reply@x.com",
        "MAILER-DAEMON@x.com",
        "list-request@x.org",
        "owner-list@x.org",
        "bounces+1@x.com",
    ]:
        assert is_no_reply_address(address), address
    for address in ["ana@example.com", "anna-maria@example.com", "replyguy@example.com"]:
        assert not is_no_reply_address(address), address


def test_replies_continue_the_thread_with_our_own_message_id():
    route = ReplyRoute(
        channel="email", address="ana@customer.example", reply_to_id="m2@c.example", references=["m1@c.example"]
    )
    message = build_email(
        ticket_id="SB-1042", sender="support@example.com", route=route, subject="s", body="b", automatic=True
    )
    assert message["In-Reply-To"] == "<m2@c.example>"
    assert message["References"] == "<m1@c.example> <m2@c.example>"
    assert message_id_of(message).startswith("sb-1042.") and message_id_of(message).endswith("@example.com")
    assert message["Auto-Submitted"] == "auto-replied" and message["X-Auto-Response-Suppress"] == "All"
    person = build_email(
        ticket_id="SB-1042", sender="support@example.com", route=route, subject="s", body="b", automatic=False
    )
    assert person["Auto-Submitted"] is None


def test_only_message_ids_we_made_count_as_our_own():
    ours = our_message_id("SB-1042", "example.com")
    assert is_our_message_id(ours, {"example.com"})
    assert not is_our_message_id(ours, {"other.example"})
    # A colleague at the support domain writing in is a customer, not a loop.
    assert not is_our_message_id("CAFx1=abc@example.com", {"example.com"})


def test_a_form_ticket_s_replies_thread_under_the_mails_we_sent_before():
    route = ReplyRoute(channel="email", address="ana@example.com")
    earlier = ["sb-1001.aaa@example.com", "sb-1001.bbb@example.com"]

    message = build_email(
        ticket_id="SB-1001",
        sender="support@example.com",
        route=route,
        subject="s",
        body="b",
        automatic=False,
        earlier=earlier,
    )

    assert message["In-Reply-To"] == "<sb-1001.bbb@example.com>"
    assert message["References"] == "<sb-1001.aaa@example.com> <sb-1001.bbb@example.com>"


def test_the_customer_s_own_message_stays_the_parent_and_the_last_reference():
    route = ReplyRoute(
        channel="email", address="ana@example.com", reply_to_id="c2@example.com", references=["c1@example.com"]
    )

    message = build_email(
        ticket_id="SB-1001",
        sender="support@example.com",
        route=route,
        subject="s",
        body="b",
        automatic=False,
        earlier=["sb-1001.aaa@example.com"],
    )

    assert message["In-Reply-To"] == "<c2@example.com>"
    assert message["References"] == "<c1@example.com> <sb-1001.aaa@example.com> <c2@example.com>"


def test_automatic_mail_says_its_language():
    route = ReplyRoute(channel="email", address="li@example.com")
    mail = build_email(
        ticket_id="SB-1",
        sender="support@example.com",
        route=route,
        subject="s",
        body="你好",
        automatic=True,
        language="zh-Hans",
    )
    assert mail["Content-Language"] == "zh-Hans" and mail.get_content().strip() == "你好"
    assert (
        build_email(
            ticket_id="SB-1", sender="support@example.com", route=route, subject="s", body="x", automatic=False
        )["Content-Language"]
        is None
    )
