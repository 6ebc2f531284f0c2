"""Unpack Outlook's TNEF container (``winmail.dat``) into the files and body it carries.

Outlook and Exchange send "rich text" mail as one ``application/ms-tnef`` part ([MS-OXTNEF]):
the files the person attached, and sometimes the body, sit inside it, where no agent can open
them. `tnefparse` reads the format; this module decides what comes out of it and guards the
library against hostile input first (`_plausible`): its loops trust the counts written in the
file, so a few crafted bytes could make it spin for hours.
"""

from __future__ import annotations

import mimetypes
import struct
from dataclasses import dataclass

from tnefparse import properties
from tnefparse.mapi import IMESSAGE_SIG
from tnefparse.tnef import TNEF

from services.intake.email.charsets import decode_bytes

SIGNATURE = b"\x78\x9f\x3e\x22"  # 0x223E9F78, little-endian ([MS-OXTNEF] 2.1.3.1)
CONTAINER_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef", "application/x-tnef"})
CONTAINER_NAMES = frozenset({"winmail.dat", "win.dat"})

_ATTACH_RENDERING = 0x9002  # starts each attachment's attributes
_ATTACH_TITLE = 0x8010
_ATTACH_DATA = 0x800F
_MAPI_BLOCKS = frozenset({0x9003, 0x9005})  # message MAPI properties, attachment MAPI properties
_RECIPIENT_TABLE = 0x9004
_MAX_NESTING = 3  # attached Outlook items inside attached items
# tnefparse copies the rest of the stream for every attribute it reads: attributes × size bytes.
_COPY_BUDGET = 4 << 30
_FIXED_SIZES = {0x0002: 2, 0x000B: 2, 0x0003: 4, 0x0004: 4, 0x000A: 4, 0x0005: 8, 0x0006: 8, 0x0007: 8, 0x0014: 8}
_FIXED_SIZES |= {0x0040: 8, 0x0048: 16}
_VARIABLE_TYPES = frozenset({0x0000, 0x000D, 0x001E, 0x001F, 0x0102})


class TnefUnreadable(ValueError):
    """The bytes are not a TNEF stream this module is willing to unpack."""


@dataclass(frozen=True)
class TnefFile:
    filename: str
    content_type: str  # lower-case; from the file's MIME tag, else guessed from its name
    content: bytes
    content_id: str | None


@dataclass(frozen=True)
class TnefContents:
    files: list[TnefFile]
    text: str | None  # the message body, when the container carries it as plain text
    html: str | None  # ... or as HTML (an RTF-only body is not converted)


def is_container(content_type: str, filename: str | None, content: bytes) -> bool:
    """A TNEF part by its type, by Outlook's file name, or (for octet-streams) by its signature."""
    if content_type in CONTAINER_TYPES or (filename or "").strip().lower() in CONTAINER_NAMES:
        return True
    return content_type == "application/octet-stream" and content.startswith(SIGNATURE)


def unpack(content: bytes) -> TnefContents:
    """The files and body inside a TNEF stream. Raises TnefUnreadable for anything else."""
    if not _plausible(content, 0, [_COPY_BUDGET]):
        raise TnefUnreadable("not a well-formed TNEF stream")
    try:
        return _contents(TNEF(content, do_checksum=False), 0)
    except Exception as error:  # a third-party parser on untrusted bytes: any failure means "unreadable"
        raise TnefUnreadable(f"{type(error).__name__}: {error}") from error


def _contents(tnef: TNEF, depth: int) -> TnefContents:
    files: list[TnefFile] = []
    titles = _attachment_titles(tnef)
    for index, attachment in enumerate(tnef.attachments):
        mapi = {attribute.name: attribute.data for attribute in attachment.mapi_attrs}
        filename = _text(mapi.get(properties.MAPI_ATTACH_LONG_FILENAME), tnef.codepage)
        filename = filename or _text(titles.get(index), tnef.codepage) or f"attachment-{index + 1}"
        embedded = getattr(attachment, "embed", None)
        if embedded is not None and depth < _MAX_NESTING:  # an attached Outlook item: its files and text
            inner = _contents(embedded, depth + 1)
            files += inner.files
            if inner.text or inner.html:
                body = (inner.text or inner.html or "").encode("utf-8")
                kind = "text/plain" if inner.text else "text/html"
                files.append(TnefFile(f"{filename}{mimetypes.guess_extension(kind)}", kind, body, None))
            continue
        content_type = _text(mapi.get(properties.MAPI_ATTACH_MIME_TAG), tnef.codepage)
        content_type = (content_type or mimetypes.guess_type(filename)[0] or "application/octet-stream").lower()
        content_id = _text(mapi.get(properties.MAPI_ATTACH_CONTENT_ID), tnef.codepage)
        files.append(TnefFile(filename, content_type.strip(), bytes(attachment.data), content_id or None))
    return TnefContents(files, _text(tnef.body, tnef.codepage), _text(tnef.htmlbody, tnef.codepage))


def _attachment_titles(tnef: TNEF) -> dict[int, bytes]:
    """Each attachment's attAttachTitle, in the OEM code page (tnefparse decodes it as UTF-8)."""
    titles: dict[int, bytes] = {}
    index = -1
    for attribute in tnef.objects:
        if attribute.name == _ATTACH_RENDERING:
            index += 1
        elif attribute.name == _ATTACH_TITLE and index >= 0 and isinstance(attribute.data, bytes):
            titles.setdefault(index, attribute.data)
    return titles


def _text(value: object, codepage: str | None) -> str | None:
    if isinstance(value, bytes):
        value = decode_bytes(value.split(b"\x00", 1)[0], codepage).text
    if not isinstance(value, str):
        return None
    return value.strip("\x00").strip() or None


# --------------------------------------------------------------------------------------------
# Guard: walk the structure with every count checked against the bytes that remain
# --------------------------------------------------------------------------------------------


def _plausible(data: bytes, depth: int, budget: list[int]) -> bool:
    """The stream's attributes and MAPI property blocks fit their bytes, and unpacking it (nested
    items included) copies at most what is left of `budget`. Mirrors how tnefparse walks them
    ([MS-OXTNEF] 2.1.3)."""
    if depth > _MAX_NESTING or not data.startswith(SIGNATURE):
        return False
    offset = 6  # signature, legacy key
    while offset + 12 < len(data):
        budget[0] -= len(data) - offset
        if budget[0] < 0:
            return False
        name, declared = struct.unpack_from("<xH2xI", data, offset)
        length = min(len(data) - offset, declared + 11)
        # Writers sometimes drop the last checksum, and tnefparse reads on; but a cut-off file is
        # not what was sent.
        if length < declared + 11 and (length < declared + 9 or name == _ATTACH_DATA):
            return False
        payload = data[offset + 9 : offset + length - 2]
        offset += length
        if name in _MAPI_BLOCKS and _mapi_block_end(payload, 0, depth, budget) is None:
            return False
        if name == _RECIPIENT_TABLE and not _recipients_fit(payload, depth, budget):
            return False
    return True


def _recipients_fit(block: bytes, depth: int, budget: list[int]) -> bool:
    if len(block) < 4:
        return False
    (rows,) = struct.unpack_from("<I", block, 0)
    offset = 4
    if rows > len(block) // 4:
        return False
    for _ in range(rows):
        end = _mapi_block_end(block, offset, depth, budget)
        if end is None:
            return False
        offset = end
    return True


def _mapi_block_end(block: bytes, offset: int, depth: int, budget: list[int]) -> int | None:
    """Where a MAPI property list starting at `offset` ends, or None when its counts overrun it.

    A property type tnefparse does not know ends its reading of the block, so it ends ours too.
    """
    if offset + 4 > len(block):
        return None
    (count,) = struct.unpack_from("<I", block, offset)
    offset += 4
    if count > (len(block) - offset) // 4:  # every property takes at least its 4-byte tag
        return None
    for _ in range(count):
        if offset + 4 > len(block):
            return None
        kind, name = struct.unpack_from("<HH", block, offset)
        offset += 4
        if name >= 0x8000:  # named property: GUID, then an ID or a name
            if offset + 20 > len(block):
                return None
            (named_by_string,) = struct.unpack_from("<I", block, offset + 16)
            offset += 20
            if named_by_string:
                size = _padded_size(block, offset)
                if size is None:
                    return None
                offset += 4 + size
            else:
                offset += 4
        multiple = bool(kind & 0x1000)
        kind &= ~0x1000
        values = 1
        if multiple:
            if offset + 4 > len(block):
                return None
            (values,) = struct.unpack_from("<I", block, offset)
            offset += 4
            if values > len(block) - offset:
                return None
        if kind not in _FIXED_SIZES and kind not in _VARIABLE_TYPES:
            return len(block)
        offset = _values_end(block, offset, kind, name, values, multiple, depth, budget)
        if offset is None or offset > len(block):
            return None
        if values % 2 and kind in (0x0002, 0x000B):
            offset += 2
    return offset


def _values_end(
    block: bytes, offset: int, kind: int, name: int, values: int, multiple: bool, depth: int, budget: list[int]
) -> int | None:
    if kind in _FIXED_SIZES:
        return offset + values * _FIXED_SIZES[kind]
    for _ in range(values):
        items = 1
        if not multiple:
            if offset + 4 > len(block):
                return None
            (items,) = struct.unpack_from("<I", block, offset)
            offset += 4
            if items > (len(block) - offset) // 4:
                return None
        for _ in range(items):
            size = _padded_size(block, offset)
            if size is None:
                return None
            value = block[offset + 4 : offset + 4 + size]
            nested = name == properties.MAPI_ATTACH_DATA_OBJ and value.startswith(IMESSAGE_SIG)
            if nested and not _plausible(value[len(IMESSAGE_SIG) :], depth + 1, budget):
                return None
            offset += 4 + size
    return offset


def _padded_size(block: bytes, offset: int) -> int | None:
    if offset + 4 > len(block):
        return None
    (size,) = struct.unpack_from("<I", block, offset)
    size += -size % 4
    return size if offset + 4 + size <= len(block) else None
