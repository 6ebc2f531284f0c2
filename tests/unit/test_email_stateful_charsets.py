"""7-bit stateful encodings (ISO-2022-JP/KR/CN, HZ, UTF-7) in bodies and headers, labelled or not."""

from __future__ import annotations

import base64

import pytest

from services.intake.email.charsets import decode_bytes
from services.intake.email.mime import parse_mail

JAPANESE = "注文番号 1234 の商品がまだ届いていません。"
KOREAN = "주문 1234 상품이 아직 도착하지 않았습니다."
CHINESE = "订单 1234 的商品还没有到。"


def iso2022_cn(text: str) -> bytes:
    """RFC 1922 ISO-2022-CN with GB 2312 in G1 (Python has no encoder for it)."""
    out = bytearray(b"\x1b$)A")
    shifted = False
    for character in text:
        if ord(character) < 0x80:
            if shifted:
                out.append(0x0F)
                shifted = False
            out.append(ord(character))
        else:
            if not shifted:
                out.append(0x0E)
                shifted = True
            out += bytes(byte & 0x7F for byte in character.encode("gb2312"))
    if shifted:
        out.append(0x0F)
    return bytes(out)


STATEFUL = [
    pytest.param(JAPANESE.encode("iso2022_jp"), JAPANESE, id="iso-2022-jp"),
    pytest.param(KOREAN.encode("iso2022_kr"), KOREAN, id="iso-2022-kr"),
    pytest.param(iso2022_cn(CHINESE), CHINESE, id="iso-2022-cn"),
    pytest.param("ｶﾀｶﾅ と 漢字".encode("iso2022_jp_ext"), "ｶﾀｶﾅ と 漢字", id="iso-2022-jp-halfwidth-katakana"),
    pytest.param("한국어 と 日本語".encode("iso2022_jp_2"), "한국어 と 日本語", id="iso-2022-jp-2"),
    # Outlook's ISO-2022-JP (CP50221) carries Windows-31J's NEC row 13 under ESC $ B.
    pytest.param(b"\x1b$B-!-j\x1b(B 1234", "①㈱ 1234", id="iso-2022-jp-microsoft"),
]


@pytest.mark.parametrize("encoded, text", STATEFUL)
@pytest.mark.parametrize("label", [None, "us-ascii", "utf-8", "iso-8859-1", "x-unknown"])
def test_escape_sequences_decide_over_a_missing_or_wrong_label(encoded: bytes, text: str, label: str | None) -> None:
    assert encoded.isascii()
    decoded = decode_bytes(encoded, label)
    assert decoded.text == text
    assert decoded.note is not None and "escape sequences" in decoded.note


@pytest.mark.parametrize("encoded, text", STATEFUL)
@pytest.mark.parametrize("label", [None, "us-ascii"])
def test_stateful_body_is_decoded_without_escape_characters(encoded: bytes, text: str, label: str | None) -> None:
    content_type = f"Content-Type: text/plain; charset={label}\n" if label else ""
    parsed = parse_mail(b"From: a@example.com\nSubject: x\n" + content_type.encode() + b"\n" + encoded + b"\r\n")
    assert parsed.text == text
    assert "\x1b" not in parsed.text and "\x0e" not in parsed.text


@pytest.mark.parametrize(
    "encoded, label, text",
    [
        ("你好，世界".encode("hz"), None, "你好，世界"),
        ("你好，世界".encode("hz"), "us-ascii", "你好，世界"),
        ("你好，世界".encode("hz"), "hz-gb-2312", "你好，世界"),
        ("Hi Mom -☺-! 注文".encode("utf-7"), "utf-7", "Hi Mom -☺-! 注文"),
        ("Grüße".encode("utf-7"), "unicode-1-1-utf-7", "Grüße"),
    ],
)
def test_hz_and_labelled_utf7(encoded: bytes, label: str | None, text: str) -> None:
    assert decode_bytes(encoded, label).text == text


@pytest.mark.parametrize(
    "plain",
    [
        b"\x1b[31mred\x1b[0m terminal colours",  # escapes, but not ISO-2022 designations
        b"a ~{b} template",  # '~{' that is not HZ
        b"C++ is +1 better",  # unlabelled '+' is not UTF-7
    ],
)
def test_ascii_that_only_resembles_a_stateful_encoding_stays_ascii(plain: bytes) -> None:
    assert decode_bytes(plain, None).text == plain.decode("ascii")


def test_undecodable_iso2022_never_leaves_escape_characters() -> None:
    decoded = decode_bytes(b"\x1b$BCmJ8\x1b$Z\x1b(B!", None)
    assert decoded.text.startswith("注文")
    assert "\x1b" not in decoded.text
    assert decoded.note is not None and "replaced" in decoded.note


def test_iso2022_cn_with_cns_planes_is_marked_incomplete_not_garbled() -> None:
    decoded = decode_bytes(b"\x1b$)G\x0e\x44\x63\x0f abc", "iso-2022-cn")
    assert decoded.text == "\ufffd abc"
    assert decoded.note is not None


@pytest.mark.parametrize(
    "codec, subject, name, filename",
    [
        ("iso2022_jp", "Re: 注文番号 1234 について", "山田 花子", "見積書.pdf"),
        ("iso2022_kr", "주문 문의 [SB-7]", "김철수", "견적서.pdf"),
    ],
)
def test_raw_stateful_headers_without_encoded_words(codec: str, subject: str, name: str, filename: str) -> None:
    # Old Japanese/Korean mailers write ISO-2022 straight into headers; its bytes contain "(" and
    # '"', which would otherwise break address and parameter parsing.
    raw = (
        b"From: " + name.encode(codec) + b" <customer@example.jp>\nTo: support@example.org\n"
        b"Subject: " + subject.encode(codec) + b'\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nhello\n--b\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="' + filename.encode(codec) + b'"\n\n%PDF\n--b--\n'
    )
    parsed = parse_mail(raw)
    assert parsed.subject == subject
    assert parsed.sender is not None and (parsed.sender.name, parsed.sender.address) == (name, "customer@example.jp")
    assert [attachment.filename for attachment in parsed.attachments] == [filename]


def test_raw_iso2022_cn_subject() -> None:
    parsed = parse_mail(b"From: a@example.cn\nSubject: " + iso2022_cn("订单 1234 问题") + b"\n\nx")
    assert parsed.subject == "订单 1234 问题"


@pytest.mark.parametrize("charset", ["us-ascii", "utf-8", "iso-8859-1", "x-unknown", ""])
@pytest.mark.parametrize("encoding", ["B", "Q"])
def test_encoded_words_with_a_wrong_charset_carrying_iso2022(charset: str, encoding: str) -> None:
    payload = "注文番号 1234".encode("iso2022_jp")
    if encoding == "B":
        word = base64.b64encode(payload).decode()
    else:
        word = "".join(f"={byte:02X}" if byte in b"\x1b =?_" else chr(byte) for byte in payload)
    parsed = parse_mail(f"From: a@example.jp\nSubject: =?{charset}?{encoding}?{word}?=\n\nx".encode())
    assert parsed.subject == "注文番号 1234"
    assert any("ISO-2022-JP" in defect for defect in parsed.defects)
