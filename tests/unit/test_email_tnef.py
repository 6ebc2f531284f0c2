"""Outlook's winmail.dat (TNEF) unpacked into ordinary attachments, and hostile TNEF refused quickly."""

from __future__ import annotations

import base64
import struct

import pytest

from services.intake.email.mime import parse_mail
from services.intake.email.tnef import SIGNATURE, TnefUnreadable, unpack

# --------------------------------------------------------------------------------------------
# A small TNEF writer ([MS-OXTNEF] 2.1.3): attributes of (level, id, type, data, checksum)
# --------------------------------------------------------------------------------------------

MESSAGE, ATTACHMENT = 1, 2


def attribute(level: int, name: int, kind: int, data: bytes) -> bytes:
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)


def mapi_string(name: int, value: str, *, unicode: bool = False) -> bytes:
    encoded = value.encode("utf-16-le") + b"\x00\x00" if unicode else value.encode("cp1252") + b"\x00"
    padded = encoded + b"\x00" * (-len(encoded) % 4)
    return struct.pack("<HHII", 0x001F if unicode else 0x001E, name, 1, len(encoded)) + padded


def mapi_binary(name: int, value: bytes) -> bytes:
    return struct.pack("<HHII", 0x0102, name, 1, len(value)) + value + b"\x00" * (-len(value) % 4)


def mapi_block(*properties: bytes) -> bytes:
    return struct.pack("<I", len(properties)) + b"".join(properties)


def stream(*attributes: bytes) -> bytes:
    header = [
        attribute(MESSAGE, 0x9006, 0x0008, struct.pack("<I", 0x10000)),  # attTnefVersion
        attribute(MESSAGE, 0x9007, 0x0006, struct.pack("<II", 1252, 0)),  # attOemCodepage
    ]
    return SIGNATURE + b"\x01\x00" + b"".join(header + list(attributes))


def attached_file(title: bytes, data: bytes, *properties: bytes) -> bytes:
    parts = [
        attribute(ATTACHMENT, 0x9002, 0x0006, b"\xff" * 14),  # attAttachRendData starts an attachment
        attribute(ATTACHMENT, 0x8010, 0x0001, title + b"\x00"),  # attAttachTitle, OEM code page
        attribute(ATTACHMENT, 0x800F, 0x0006, data),  # attAttachData
    ]
    if properties:
        parts.append(attribute(ATTACHMENT, 0x9005, 0x0006, mapi_block(*properties)))  # attAttachment
    return b"".join(parts)


def mail_with(container: bytes, *, content_type: str = "application/ms-tnef", name: str = "winmail.dat", text=True):
    text_part = "--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" if text else ""
    raw = (
        "From: Stefan Maier <stefan@example.com>\r\nTo: support@example.org\r\nSubject: Angebot\r\n"
        'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + text_part + f"--b\r\nContent-Type: {content_type}; "
        f'name="{name}"\r\nContent-Transfer-Encoding: base64\r\n\r\n{base64.b64encode(container).decode()}\r\n--b--\r\n'
    )
    return parse_mail(raw.encode())


# --------------------------------------------------------------------------------------------
# Unpacking
# --------------------------------------------------------------------------------------------


def test_inner_files_keep_their_names_and_types() -> None:
    container = stream(
        attached_file(b"Pr\xe4sentation.txt", b"slides"),  # a cp1252 title, no MAPI name: type from the name
        attached_file(b"REPORT~1.PDF", b"%PDF-1.7", mapi_string(0x3707, "Quarterly report 2024.pdf", unicode=True)),
        attached_file(b"scan.bin", b"\x89PNG", mapi_string(0x370E, "image/png"), mapi_string(0x3712, "scan@01DA")),
    )
    parsed = mail_with(container)
    assert parsed.text == "See attached."
    assert [(item.filename, item.content_type, item.content) for item in parsed.attachments] == [
        ("Präsentation.txt", "text/plain", b"slides"),
        ("Quarterly report 2024.pdf", "application/pdf", b"%PDF-1.7"),
        ("scan.bin", "image/png", b"\x89PNG"),
    ]
    assert (parsed.attachments[2].content_id, parsed.attachments[2].inline) == ("scan@01DA", True)
    assert parsed.defects == []


@pytest.mark.parametrize(
    "content_type, name",
    [
        ("application/vnd.ms-tnef", "winmail.dat"),
        ("application/octet-stream", "winmail.dat"),  # Exchange relays that lose the type
        ("application/octet-stream", "ATT00001.dat"),  # recognised by its signature
        ("application/ms-tnef", "WINMAIL.DAT"),
    ],
)
def test_other_outlook_container_labels(content_type: str, name: str) -> None:
    parsed = mail_with(stream(attached_file(b"Angebot.txt", b"offer")), content_type=content_type, name=name)
    assert [item.filename for item in parsed.attachments] == ["Angebot.txt"]


def test_a_body_only_inside_the_container_becomes_the_text() -> None:
    body = attribute(MESSAGE, 0x800C, 0x0002, "Grüße, das Angebot liegt bei.".encode("cp1252"))  # attBody
    parsed = mail_with(stream(body, attached_file(b"Angebot.txt", b"offer")), text=False)
    assert parsed.text == "Grüße, das Angebot liegt bei."
    assert [item.filename for item in parsed.attachments] == ["Angebot.txt"]


def test_an_html_body_inside_the_container_becomes_text_and_sanitised_html() -> None:
    html = b"<html><body><p>Hello <b>there</b></p><script>x()</script></body></html>"
    properties = attribute(MESSAGE, 0x9003, 0x0006, mapi_block(mapi_binary(0x1013, html)))  # PR_HTML
    parsed = mail_with(stream(properties), text=False)
    assert parsed.text == "Hello there"
    assert parsed.html is not None and "<b>there</b>" in parsed.html and "script" not in parsed.html
    assert parsed.attachments == []  # the container carried only the body


def test_an_attached_outlook_item_contributes_its_files() -> None:
    inner = stream(attached_file(b"inner.txt", b"inside"))
    signature = b"\x07\x03\x02\x00\x00\x00\x00\x00\xc0\x00\x00\x00\x00\x00\x00\x46"
    item = (
        attribute(ATTACHMENT, 0x9002, 0x0006, b"\xff" * 14)
        + attribute(ATTACHMENT, 0x8010, 0x0001, b"Forwarded item\x00")
        + attribute(ATTACHMENT, 0x9005, 0x0006, mapi_block(mapi_binary(0x3701, signature + inner)))
    )
    parsed = mail_with(stream(item, attached_file(b"outer.txt", b"outside")))
    assert sorted(item.filename for item in parsed.attachments) == ["inner.txt", "outer.txt"]


# --------------------------------------------------------------------------------------------
# Broken and hostile containers: kept as they are, with a defect, never a crash or a hang
# --------------------------------------------------------------------------------------------

HOSTILE = {
    # MAPI property count of 4 billion with no properties behind it (tnefparse would loop on it)
    "property count": stream(attribute(MESSAGE, 0x9003, 0x0006, struct.pack("<I", 0xFFFFFFFF))),
    # one multi-valued short with 4 billion values
    "value count": stream(attribute(MESSAGE, 0x9003, 0x0006, struct.pack("<IHHI", 1, 0x1002, 0x0E07, 0xFFFFFFFF))),
    # 2 MB of minimal attributes: tnefparse copies the rest of the stream for each one
    "attribute flood": stream(*[attribute(MESSAGE, 0x8008, 0x0006, b"x")] * 170_000),
    "cut off": stream(attached_file(b"a.txt", b"abc"))[:60],
    "not TNEF at all": b"this is not a TNEF stream, just a file called winmail.dat",
    "attachment data before any attachment": SIGNATURE + b"\x01\x00" + attribute(ATTACHMENT, 0x800F, 6, b"data"),
}


def test_a_container_with_nothing_to_show_is_kept_with_a_defect() -> None:
    container = stream()  # an RTF-only body, say, which is not converted
    parsed = mail_with(container)
    assert [item.content for item in parsed.attachments] == [container]
    assert any("TNEF" in defect for defect in parsed.defects)


@pytest.mark.parametrize("container", list(HOSTILE.values()), ids=list(HOSTILE))
def test_unreadable_containers_are_kept_with_a_defect(container: bytes) -> None:
    with pytest.raises(TnefUnreadable):
        unpack(container)
    parsed = mail_with(container)
    assert [(item.filename, item.content) for item in parsed.attachments] == [("winmail.dat", container)]
    assert any("TNEF" in defect for defect in parsed.defects)
