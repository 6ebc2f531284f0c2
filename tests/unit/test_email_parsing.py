"""Email parsing, quote stripping and classification on small hand-made mails."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from services.intake.email.classify import classify_mail
from services.intake.email.mime import MailUnreadable, ParsedMail, parse_mail
from services.intake.email.quoting import strip_quoted_text


def mail(headers: str, body: str | bytes = "Hello", *, crlf: bool = False) -> bytes:
    """Raw mail from a header block and a body (text is UTF-8 encoded; bytes are used as they are)."""
    raw_body = body.encode("utf-8") if isinstance(body, str) else body
    raw = headers.strip("\n").encode("utf-8") + b"\n\n" + raw_body
    return raw.replace(b"\n", b"\r\n") if crlf else raw


def parse(headers: str, body: str | bytes = "Hello") -> ParsedMail:
    return parse_mail(mail(headers, body))


BASIC = "From: Ann Customer <ann@example.com>\nTo: support@example.org\nSubject: Help"


# --------------------------------------------------------------------------------------------
# Structure: alternative, HTML-only, attachments, forwarded messages
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("crlf", [False, True])
def test_multipart_alternative_prefers_the_plain_text_and_sanitises_the_html(crlf: bool) -> None:
    raw = mail(
        BASIC + '\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary="alt"',
        "--alt\nContent-Type: text/plain; charset=utf-8\n\nPlain version\n"
        "--alt\nContent-Type: text/html; charset=utf-8\n\n"
        '<p onclick="steal()">HTML <b>version</b><script>alert(1)</script></p>\n'
        "--alt--\n",
        crlf=crlf,
    )
    parsed = parse_mail(raw)
    assert parsed.text == "Plain version"
    assert parsed.html == "<p>HTML <b>version</b></p>"
    assert parsed.attachments == []
    assert parsed.subject == "Help"
    assert parsed.sender is not None and parsed.sender.address == "ann@example.com"
    assert parsed.sender.name == "Ann Customer"


def test_html_only_mail_gets_its_text_from_the_html() -> None:
    parsed = parse(
        BASIC + "\nContent-Type: text/html; charset=utf-8",
        "<html><head><style>p {color: red}</style><title>x</title></head><body>"
        "<p>Line one</p><p>Line <a href='javascript:alert(1)'>two</a></p>"
        "<img src='cid:logo@x' alt='logo'><img src='https://tracker.example/pixel.gif'></body></html>",
    )
    assert "Line one" in parsed.text and "Line two" in parsed.text
    assert "<" not in parsed.text and "color" not in parsed.text
    assert parsed.html is not None
    assert "javascript:" not in parsed.html and "style" not in parsed.html
    assert 'src="cid:logo@x"' in parsed.html
    assert "tracker.example" not in parsed.html  # remote images are tracking beacons


def test_attachments_and_inline_images_are_listed_with_decoded_content() -> None:
    png = b"\x89PNG\r\n\x1a\nfake image"
    pdf = b"%PDF-1.4 fake"
    parsed = parse(
        BASIC + '\nContent-Type: multipart/mixed; boundary="mixed"',
        "--mixed\n"
        'Content-Type: multipart/related; boundary="rel"\n\n'
        "--rel\nContent-Type: text/html; charset=utf-8\n\n"
        '<p>See <img src="cid:chart@example.com"></p>\n'
        "--rel\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n"
        "Content-ID: <chart@example.com>\nContent-Disposition: inline\n\n"
        f"{base64.b64encode(png).decode()}\n"
        "--rel--\n"
        "--mixed\nContent-Type: application/pdf; name=invoice.pdf\nContent-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="invoice.pdf"\n\n'
        f"{base64.b64encode(pdf).decode()}\n"
        "--mixed--\n",
    )
    assert parsed.text == "See"
    assert parsed.html is not None and 'src="cid:chart@example.com"' in parsed.html
    image, invoice = parsed.attachments
    assert (image.content_type, image.content, image.content_id, image.inline) == (
        "image/png",
        png,
        "chart@example.com",
        True,
    )
    assert (invoice.filename, invoice.content_type, invoice.content, invoice.inline) == (
        "invoice.pdf",
        "application/pdf",
        pdf,
        False,
    )


def test_forwarded_message_becomes_an_eml_attachment() -> None:
    forwarded = "From: Bob <bob@example.net>\nSubject: Original question\n\nThe forwarded body\n"
    parsed = parse(
        BASIC + '\nContent-Type: multipart/mixed; boundary="b"',
        f"--b\nContent-Type: text/plain\n\nPlease see below.\n--b\nContent-Type: message/rfc822\n\n{forwarded}--b--\n",
    )
    assert parsed.text == "Please see below."
    (attachment,) = parsed.attachments
    assert attachment.content_type == "message/rfc822"
    assert attachment.filename == "Original question.eml"
    assert attachment.content.startswith(b"From: Bob <bob@example.net>")
    assert b"The forwarded body" in attachment.content


def test_format_flowed_text_is_unwrapped() -> None:
    parsed = parse(
        BASIC + "\nContent-Type: text/plain; charset=utf-8; format=flowed",
        "This paragraph was \nwrapped by the \nsender.\nNext line.\n",
    )
    assert parsed.text == "This paragraph was wrapped by the sender.\nNext line."


def test_utf16_body_is_decoded() -> None:
    parsed = parse(BASIC + "\nContent-Type: text/plain; charset=utf-16le", "Grüße".encode("utf-16-le"))
    assert parsed.text == "Grüße"


# --------------------------------------------------------------------------------------------
# Header encodings: RFC 2047 and RFC 2231
# --------------------------------------------------------------------------------------------


def test_rfc2047_subject_and_display_name_are_decoded() -> None:
    # The UTF-8 bytes of "ö" are split across the two adjacent encoded words.
    parsed = parse(
        "From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <jorg@example.de>\n"
        "To: support@example.org\n"
        "Subject: =?UTF-8?B?R3LDvMOfZQ==?= =?utf-8?q?_aus_K=C3?= =?utf-8?q?=B6ln?=\n"
        "  und    mehr"
    )
    assert parsed.subject == "Grüße aus Köln und mehr"
    assert parsed.sender is not None and parsed.sender.name == "Jörg Müller"


def test_rfc2231_filenames_with_charset_and_continuations() -> None:
    parsed = parse(
        BASIC + '\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nBody\n"
        "--b\nContent-Type: application/octet-stream\n"
        "Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rates.pdf\n\nx\n"
        "--b\nContent-Type: application/octet-stream\n"
        "Content-Disposition: attachment;\n filename*0*=iso-8859-1''Pr%E4sentation;\n filename*1=.pptx\n\ny\n"
        "--b--\n",
    )
    assert [attachment.filename for attachment in parsed.attachments] == ["€ rates.pdf", "Präsentation.pptx"]


def test_addresses_groups_and_bare_words() -> None:
    parsed = parse(
        'From: "Doe, Jane" <jane@example.com>\n'
        "To: Team: a@example.com, B <b@example.com>;, undisclosed-recipients:;\n"
        'Cc: "This one: is \\"right\\"" <ding@dong.com>, No-address\n'
        "Reply-To: <replies@example.com>\nSubject: x"
    )
    assert parsed.sender is not None and (parsed.sender.name, parsed.sender.address) == (
        "Doe, Jane",
        "jane@example.com",
    )
    assert [address.address for address in parsed.to] == ["a@example.com", "b@example.com"]
    assert [(address.name, address.address) for address in parsed.cc] == [
        ('This one: is "right"', "ding@dong.com"),
        ("No-address", ""),  # a bare word is a name, never an address to reply to
    ]
    assert [address.address for address in parsed.reply_to] == ["replies@example.com"]


def test_message_ids_and_dates() -> None:
    parsed = parse(
        BASIC + "\nMessage-ID: <abc@example.com>\nIn-Reply-To: parent@example.com\n"
        "References: <one@example.com>\n <two@example.com> <>\nDate: Wed, 13 Sep 2017 13:05:45 -0000"
    )
    assert parsed.message_id == "abc@example.com"
    assert parsed.in_reply_to == ["parent@example.com"]
    assert parsed.references == ["one@example.com", "two@example.com"]
    assert parsed.date == datetime(2017, 9, 13, 13, 5, 45, tzinfo=UTC)


def test_unparseable_date_is_none_with_a_defect() -> None:
    parsed = parse(BASIC + "\nDate: the day before yesterday")
    assert parsed.date is None
    assert any("Date" in defect for defect in parsed.defects)


# --------------------------------------------------------------------------------------------
# Mislabelled charsets
# --------------------------------------------------------------------------------------------


def test_gb2312_label_with_gbk_only_characters() -> None:
    # 镕 is in GBK but not in GB2312: a strict GB2312 decoder fails on it.
    text = "朱镕基同志"
    parsed = parse(
        f"From: ann@example.com\nSubject: =?gb2312?B?{base64.b64encode(text.encode('gbk')).decode()}?=\n"
        "Content-Type: text/plain; charset=gb2312",
        text.encode("gbk"),
    )
    assert parsed.subject == text
    assert parsed.text == text


def test_x_gbk_label() -> None:
    parsed = parse(BASIC + '\nContent-Type: text/plain; charset="X-GBK"', "你好，世界".encode("gbk"))
    assert parsed.text == "你好，世界"


def test_big5_label_with_utf8_bytes() -> None:
    parsed = parse(BASIC + "\nContent-Type: text/plain; charset=big5", "繁體中文測試")
    assert parsed.text == "繁體中文測試"
    assert any("UTF-8" in defect for defect in parsed.defects)


def test_big5_label_with_big5_bytes() -> None:
    parsed = parse(BASIC + "\nContent-Type: text/plain; charset=big5", "繁體中文測試".encode("big5"))
    assert parsed.text == "繁體中文測試"


def test_ks_c_5601_1987_is_read_as_cp949() -> None:
    # 똠 exists in CP949 but not in KS X 1001 (EUC-KR), which Python maps ks_c_5601-1987 to.
    text = "똠방각하 안녕하세요"
    encoded = base64.b64encode(text.encode("cp949")).decode()
    parsed = parse(
        f"From: =?ks_c_5601-1987?B?{encoded}?= <kim@example.kr>\nSubject: =?ks_c_5601-1987?B?{encoded}?=\n"
        "Content-Type: text/plain; charset=ks_c_5601-1987",
        text.encode("cp949"),
    )
    assert parsed.subject == text
    assert parsed.sender is not None and parsed.sender.name == text
    assert parsed.text == text


def test_unknown_charset_falls_back_without_failing() -> None:
    parsed = parse(BASIC + "\nContent-Type: text/plain; charset=x-made-up", "Café crème".encode())
    assert parsed.text == "Café crème"


def test_raw_8bit_headers_use_the_body_charset() -> None:
    parsed = parse_mail(
        b"From: ann@example.com\nSubject: Gr\xfc\xdfe aus K\xf6ln\n"
        b"Content-Type: text/plain; charset=iso-8859-1\n\nK\xf6ln"
    )
    assert parsed.subject == "Grüße aus Köln"
    assert parsed.text == "Köln"


# --------------------------------------------------------------------------------------------
# Malformed input
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", b"  \r\n\r\n", b"just some words, no header at all\n"])
def test_input_that_is_not_mail_is_refused(raw: bytes) -> None:
    with pytest.raises(MailUnreadable):
        parse_mail(raw)


def test_missing_close_delimiter_keeps_the_cut_off_part_as_an_attachment() -> None:
    parsed = parse(
        BASIC + '\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nComplete part\n--b\nContent-Type: text/plain\n\nCut off he",
    )
    assert parsed.text == "Complete part"
    assert [attachment.content for attachment in parsed.attachments] == [b"Cut off he"]
    assert any("cut off" in defect for defect in parsed.defects)


def test_multipart_without_boundary_is_one_opaque_part() -> None:
    parsed = parse(BASIC + "\nContent-Type: multipart/mixed", "no parts here")
    assert parsed.text == ""
    assert [attachment.content_type for attachment in parsed.attachments] == ["multipart/mixed"]
    assert parsed.defects


def test_parameter_list_folded_without_whitespace_and_bad_base64() -> None:
    parsed = parse(
        BASIC + '\nContent-Type: multipart/alternative;\nboundary="alt"',
        "--alt\nContent-Type: text/plain\nContent-Transfer-Encoding: base64  \n\nSGVsbG8gd29ybGQ=\n"
        "--alt\nContent-Type: text/html\nContent-Transfer-Encoding: base64\n\n?? not base64 ??\n--alt--\n",
    )
    assert parsed.text == "Hello world"
    assert parsed.html is None  # the undecodable HTML part is kept as an attachment, not shown
    assert [attachment.content for attachment in parsed.attachments] == [b"?? not base64 ??"]


def test_garbage_never_raises() -> None:
    for raw in (
        b'Subject: x\nContent-Type: multipart/mixed; boundary="a"\n\n--a\n--a\n--a--',
        b'Subject: \xff\xfe\x00\nContent-Type: text/plain; charset="\n\n\x00\x01\x02',
        b"Subject: =?utf-8?B?####?= =?bogus?Q?=ZZ?=\nContent-Transfer-Encoding: quoted-printable\n\n=ZZ=\n",
        b"Content-Type: message/rfc822\n\nContent-Type: message/rfc822\n\n",
    ):
        assert isinstance(parse_mail(raw), ParsedMail)


# --------------------------------------------------------------------------------------------
# Quoted history and signatures
# --------------------------------------------------------------------------------------------

NEW = "Thanks, that fixed it.\nOne more question about invoices."


@pytest.mark.parametrize(
    "history",
    [
        "On Mon, 1 Jan 2024 at 10:00, Jane Doe <jane@example.com>\nwrote:\n> Did you try restarting?",
        "Am 01.01.2024 um 10:00 schrieb Jane Doe <jane@example.com>:\n> Haben Sie neu gestartet?",
        "Le lun. 1 janv. 2024 à 10:00, Jane Doe <jane@example.com> a écrit :\n> Avez-vous redémarré ?",
        "El lun, 1 ene 2024 a las 10:00, Jane Doe (<jane@example.com>) escribió:\n> ¿Ha reiniciado?",
        "-----Original Message-----\nFrom: Jane Doe\nSent: Monday, January 1, 2024 10:00\nSubject: RE: Help\n\nOld",
        "________________________________\nFrom: Jane Doe <jane@example.com>\nSent: Monday, January 1, 2024\nTo: Ann",
        "Von: Jane Doe <jane@example.com>\nGesendet: Montag, 1. Januar 2024 10:00\nAn: Ann\nBetreff: Hilfe",
        "De : Jane Doe\nEnvoyé : lundi 1 janvier 2024 10:00\nÀ : Ann\nObjet : Aide",
        "> Did you try restarting?\n> It usually helps.\n>\n",
    ],
)
def test_quoted_history_is_stripped(history: str) -> None:
    assert strip_quoted_text(f"{NEW}\n\n{history}\n") == NEW


@pytest.mark.parametrize(
    "signature",
    ["-- \nAnn Customer\nACME Corp", "--\nAnn", "Sent from my iPhone", "Gesendet von meinem iPhone"],
)
def test_signatures_are_stripped(signature: str) -> None:
    assert strip_quoted_text(f"{NEW}\n\n{signature}") == NEW


def test_inline_replies_keep_the_answers() -> None:
    text = "> Which version?\n2.3.1\n> Which OS?\nLinux\n\n-- \nAnn"
    assert strip_quoted_text(text) == "2.3.1\nLinux"


def test_forwarded_messages_and_ordinary_prose_are_kept() -> None:
    text = "Please help with this:\n\n---------- Forwarded message ---------\nFrom: Bob\n\nIt broke."
    assert strip_quoted_text(text) == text
    prose = "My colleague wrote:\nthe export is empty.\nIs that expected?"
    assert strip_quoted_text(prose) == prose


def test_stripping_everything_falls_back_to_the_full_text() -> None:
    assert strip_quoted_text("> only a quote\n> nothing new") == "> only a quote\n> nothing new"


def test_parsed_mail_carries_new_text() -> None:
    parsed = parse(BASIC, f"{NEW}\n\nOn Mon, Jan 1, 2024 at 10:00 AM Jane <jane@example.com> wrote:\n> old\n")
    assert parsed.new_text == NEW
    assert parsed.text.endswith("> old")


# --------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------


def classify(headers: str, body: str | bytes = "Hello") -> tuple[str, list[str], bool | None]:
    raw = mail(headers, body)
    result = classify_mail(parse_mail(raw), raw)
    return result.mail_class, result.bounced_recipients, result.permanent


@pytest.mark.parametrize(
    "extra_header",
    [
        "Auto-Submitted: auto-replied",
        "Auto-Submitted: auto-generated; owner-email=x@example.com",
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "Precedence: auto_reply",
        "Subject: Out of Office: Help",
        "Subject: Automatische Antwort: Hilfe",
        "Subject: Réponse automatique : Aide",
        "Subject: Respuesta automática: Ayuda",
        "Subject: 自动回复: 帮助",
    ],
)
def test_auto_replies(extra_header: str) -> None:
    headers = "From: ann@example.com\nTo: support@example.org\n" + extra_header
    if not extra_header.startswith("Subject"):
        headers += "\nSubject: Help"
    assert classify(headers)[0] == "auto_reply"


@pytest.mark.parametrize(
    "headers",
    [
        BASIC + "\nAuto-Submitted: no",
        "From: ann@example.com\nSubject: Vacation rental booking",
        "From: ann@example.com\nSubject: Re: Out of office hours support?",
        "From: ann@example.com\nSubject: Fwd: Undelivered Mail Returned to Sender",
    ],
)
def test_customer_mail_is_normal(headers: str) -> None:
    body = "My mail could not be delivered to my colleague, user unknown. Can you help?"
    assert classify(headers, body)[0] == "normal"


DSN = (
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\nTo: support@example.org\n"
    "Subject: Undelivered Mail Returned to Sender\nAuto-Submitted: auto-replied\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="r"'
)


def dsn_body(action: str, status: str, recipient: str = "Gone@Example.COM") -> str:
    return (
        "--r\nContent-Type: text/plain\n\nThis is the mail system at host mx.example.org.\n"
        "--r\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.org\n\n"
        f"Final-Recipient: rfc822; {recipient}\nAction: {action}\nStatus: {status}\n"
        "--r\nContent-Type: text/rfc822-headers\n\nTo: gone@example.com\nSubject: Your ticket\n--r--\n"
    )


def test_rfc3464_bounce_wins_over_the_auto_submitted_header() -> None:
    assert classify(DSN, dsn_body("failed", "5.1.1")) == ("bounce", ["gone@example.com"], True)


def test_delayed_delivery_is_a_soft_bounce() -> None:
    assert classify(DSN, dsn_body("delayed", "4.4.1")) == ("bounce", ["gone@example.com"], False)


def test_successful_delivery_notice_is_an_auto_reply_and_bounces_nobody() -> None:
    assert classify(DSN, dsn_body("delivered", "2.0.0")) == ("auto_reply", [], None)


def test_plain_text_postfix_bounce() -> None:
    body = (
        "This is the mail system at host mx.example.org.\n\n"
        "I'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n"
        "<nobody@example.net>: host mx.example.net[192.0.2.1] said: 550 5.1.1\n    User unknown\n"
    )
    headers = "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\nTo: support@example.org\nSubject: Failure"
    assert classify(headers, body) == ("bounce", ["nobody@example.net"], True)


def test_x_failed_recipients_header() -> None:
    headers = "From: Mail Delivery System <Mailer-Daemon@mx.example.org>\nX-Failed-Recipients: gone@example.com\n"
    assert classify(headers + "Subject: Mail delivery failed")[:2] == ("bounce", ["gone@example.com"])


def test_arf_complaint() -> None:
    headers = (
        "From: abuse@isp.example\nSubject: Abuse report\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"'
    )
    body = (
        "--f\nContent-Type: text/plain\n\nA user marked your mail as spam.\n"
        "--f\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: x/1.0\nVersion: 1\n"
        "--f\nContent-Type: text/rfc822-headers\n\nFrom: support@example.org\n--f--\n"
    )
    assert classify(headers, body)[0] == "complaint"
