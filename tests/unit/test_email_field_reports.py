"""The email field reports of issue 7 (tests/fixtures/field-reports/, from shared/corpora/field-reports),
each with the outcome its expected.json names."""

from __future__ import annotations

from pathlib import Path

from services.intake.email.classify import classify_mail
from services.intake.email.mime import parse_mail

FIELD_REPORTS = Path(__file__).resolve().parents[1] / "fixtures" / "field-reports"


def field_report(name: str) -> bytes:
    return (FIELD_REPORTS / name).read_bytes()


def test_01_unlabelled_iso2022jp_body_is_japanese_text() -> None:
    parsed = parse_mail(field_report("01-iso2022jp-no-charset.eml"))
    assert "注文番号 1234" in parsed.text and "届いていません" in parsed.text
    assert "\x1b" not in parsed.text and "\x1b" not in parsed.new_text


def test_05_outlook_mail_with_x_auto_response_suppress_is_a_customer_message() -> None:
    raw = field_report("05-outlook-x-auto-response-suppress.eml")
    result = classify_mail(parse_mail(raw), raw)
    assert result.mail_class == "normal"
    # The header asks others for no auto-replies: the ticket opens, the acknowledgement is withheld.
    assert not result.acknowledge and "X-Auto-Response-Suppress" in result.reason


def test_10_the_file_inside_winmail_dat_is_an_attachment() -> None:
    parsed = parse_mail(field_report("10-tnef-winmail-dat.eml"))
    assert parsed.text == "Das Angebot liegt bei."
    [attachment] = parsed.attachments
    assert (attachment.filename, attachment.content_type) == ("Angebot.txt", "text/plain")
    assert attachment.content == b"Offer 2024-117: 40 units at 12.50 EUR\r\n"


def test_18_polish_out_of_office_subject_is_an_auto_reply() -> None:
    raw = field_report("18-ooo-polish-subject-only.eml")
    result = classify_mail(parse_mail(raw), raw)
    assert (result.mail_class, result.acknowledge) == ("auto_reply", False)
    assert "pl:" in result.reason
