"""Parse one raw RFC 5322 / MIME message into the fields intake needs.

`parse_mail` is pure and total for anything that looks like mail: malformed structure, broken
encoded words, unknown or wrong charsets and bad dates are repaired where possible and reported in
`ParsedMail.defects` rather than raised.

The MIME tree is split here rather than by the stdlib parser, because recovering from broken
structure is a policy choice (which delimiter ends which part, what a cut-off part is) that the
stdlib makes differently from widely deployed lenient parsers such as Stalwart's mail-parser,
whose behaviour on malformed mail the conformance corpus records. Header and body decoding is done
here too, so that charset repair (see `charsets`) applies everywhere. The stdlib still supplies
address splitting and date parsing.

Which leaf parts form the body and which are attachments follows the JMAP algorithm of
RFC 8621 §4.1.4, so behaviour on odd nestings is predictable rather than ad hoc.
"""

from __future__ import annotations

import base64
import binascii
import html as html_lib
import inspect
import quopri
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import getaddresses, parsedate_to_datetime
from urllib.parse import unquote_to_bytes

import nh3
from inscriptis import get_text

from services.intake.email import tnef
from services.intake.email.charsets import decode_bytes
from services.intake.email.iso2022 import header_as_encoded_words
from services.intake.email.quoting import strip_quoted_text


class MailUnreadable(ValueError):
    """The input is not an email message at all (empty, or no header field could be read)."""


@dataclass(frozen=True)
class MailAttachment:
    filename: str | None
    content_type: str  # lower-case, e.g. "image/png"
    content: bytes
    content_id: str | None  # without <>
    inline: bool


@dataclass(frozen=True)
class MailAddress:
    name: str | None
    address: str  # as written, stripped; lower-casing is the caller's business


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None
    in_reply_to: list[str]
    references: list[str]
    subject: str | None
    sender: MailAddress | None
    reply_to: list[MailAddress]
    to: list[MailAddress]
    cc: list[MailAddress]
    date: datetime | None
    text: str
    html: str | None
    new_text: str
    attachments: list[MailAttachment]
    headers: dict[str, str]  # lower-case name → decoded value of its first occurrence
    defects: list[str]  # what was malformed and how it was repaired, for logs and support


# --------------------------------------------------------------------------------------------
# Header decoding
# --------------------------------------------------------------------------------------------


@dataclass
class _Decoding:
    """Per-message decoding state."""

    defects: list[str]
    # Mailers that put raw 8-bit bytes in headers use their body charset for them; UTF-8 is tried first.
    raw_header_charset: str | None = None

    def note(self, defect: str) -> None:
        self.defects.append(defect)


_ENCODED_WORD = re.compile(r"=\?([^?\s]*)\?([bBqQ])\?([^?]*)\?=")
_FOLDING = re.compile(r"\r?\n[ \t]*")


def _byte_view(value: str) -> str:
    """Header text with one character per raw byte (Latin-1 view).

    Header values keep undecodable 8-bit bytes surrogate-escaped; viewing them byte-wise lets raw
    bytes *inside* an encoded word be decoded with that word's charset, and raw bytes outside
    encoded words with the message's charset.
    """
    return _FOLDING.sub(" ", value).encode("utf-8", "surrogateescape").decode("latin-1")


def _decode_raw_bytes(byte_view: str, ctx: _Decoding) -> str:
    if byte_view.isascii():
        return byte_view
    decoded = decode_bytes(byte_view.encode("latin-1"), ctx.raw_header_charset or "utf-8")
    if decoded.note:
        ctx.note(f"raw 8-bit header: {decoded.note}")
    return decoded.text


def _decode_word_bytes(encoding: str, payload: str) -> bytes:
    if encoding in "bB":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
        if len(cleaned) % 4 == 1:  # a dangling sixth of a byte: drop it rather than the whole word
            cleaned = cleaned[:-1]
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    return re.sub(
        rb"=([0-9A-Fa-f]{2})",
        lambda match: bytes([int(match.group(1), 16)]),
        payload.replace("_", " ").encode("latin-1"),
    )


def _decode_encoded_words(byte_view: str, ctx: _Decoding) -> str:
    """Decode RFC 2047 encoded words leniently, in a `_byte_view` string.

    Adjacent words in the same charset are joined *before* decoding, because mailers split
    multi-byte characters across words; whitespace between encoded words is dropped (RFC 2047 §6.2).
    """
    pieces: list[str] = []
    pending_charset: str | None = None
    pending_bytes = b""
    position = 0

    def flush() -> None:
        nonlocal pending_charset, pending_bytes
        if pending_charset is not None:
            decoded = decode_bytes(pending_bytes, pending_charset)
            if decoded.note:
                ctx.note(f"encoded word: {decoded.note}")
            pieces.append(decoded.text)
        pending_charset, pending_bytes = None, b""

    for match in _ENCODED_WORD.finditer(byte_view):
        between = byte_view[position : match.start()]
        if between and not (pending_charset is not None and between.isspace()):
            flush()
            pieces.append(_decode_raw_bytes(between, ctx))
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 language suffix: =?utf-8*en?Q?...?=
        if pending_charset is not None and pending_charset.lower() != charset.lower():
            flush()
        pending_charset = charset
        pending_bytes += _decode_word_bytes(match.group(2), match.group(3))
        position = match.end()
    flush()
    pieces.append(_decode_raw_bytes(byte_view[position:], ctx))
    return "".join(pieces)


def _decode_unstructured(value: str, ctx: _Decoding) -> str:
    return _decode_encoded_words(_byte_view(value), ctx)


def _normalise_whitespace(value: str) -> str:
    return " ".join(value.split())


# Python ≥ 3.11.10/3.12.6 parse strictly by default and then return nothing at all for a list with
# one odd entry (an empty group, a stray comma); intake wants every address it can still read.
_LENIENT_ADDRESS_PARSING = {"strict": False} if "strict" in inspect.signature(getaddresses).parameters else {}


def _parse_addresses(values: Iterable[str], ctx: _Decoding) -> list[MailAddress]:
    # Split before decoding: decoded display names may contain commas or quotes that break the split.
    addresses: list[MailAddress] = []
    for name, address in getaddresses([_byte_view(value) for value in values], **_LENIENT_ADDRESS_PARSING):
        name = _normalise_whitespace(_decode_encoded_words(name, ctx))
        address = _decode_raw_bytes(address, ctx).strip()
        if not address and not name:
            continue
        if "@" not in address and not name:
            # A bare word ("From: Whomever", "Cc: No-address") is a display name, not a mailbox:
            # keep it as the name so nobody mistakes it for an address to reply to or key on.
            address, name = "", address
        addresses.append(MailAddress(name=name or None, address=address))
    return addresses


def _message_ids(value: str | None) -> list[str]:
    """Tokenise Message-ID / In-Reply-To / References; bare ids without <> are accepted too."""
    if not value:
        return []
    bracketed = re.findall(r"<([^<>]*)>", value)
    if bracketed or "<" in value:
        return [token.strip() for token in bracketed if token.strip()]
    return [token.strip(",;") for token in value.split() if token.strip(",;")]


def _parse_date(value: str | None, ctx: _Decoding) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        ctx.note(f"unparseable Date header {value!r}")
        return None
    # "-0000" (RFC 5322: zone unknown) parses as naive; UTC is the only sensible reading.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------
# Entity structure
# --------------------------------------------------------------------------------------------


@dataclass
class _Entity:
    """One MIME entity: the whole message, a body part, or a message/rfc822 part's content."""

    headers: list[tuple[str, str]]  # (lower-case name, raw unfolded-later value) in order
    content_type: str
    content: bytes  # the transfer-decoded body; empty for a multipart whose parts were found
    children: list[_Entity] = field(default_factory=list)  # a multipart's parts, or a message/rfc822's message
    is_multipart: bool = False  # a multipart whose boundary was found (otherwise it is an opaque leaf)
    truncated: bool = False  # a body part cut off by the end of input before its delimiter
    undecodable: bool = False  # the transfer encoding could not be decoded; content is raw

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    def last_header(self, name: str) -> str | None:
        return _last_value(self.headers, name)

    def header_values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]


def _last_value(headers: list[tuple[str, str]], name: str) -> str | None:
    # Two Content-Type fields in one part nearly always mean a lost boundary line merged two
    # header blocks; the later one describes the content that follows it.
    return next((value for key, value in reversed(headers) if key == name), None)


_HEADER_FIELD = re.compile(rb"([!-9;-~]+)[ \t]*:(.*)", re.DOTALL)  # RFC 5322 obs-syntax allows "Name :"
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r)?")
_MAX_DEPTH = 40  # nesting beyond this is an attack or a loop, not mail


def _split_header_block(data: bytes, start: int, ctx: _Decoding) -> tuple[list[tuple[str, str]], int]:
    """Header fields from `start` on, and where the body begins."""
    headers: list[tuple[str, str]] = []
    position = start
    if start == 0 and data.startswith(b"From "):  # mbox envelope line
        position = data.find(b"\n") + 1 or len(data)
    while position < len(data):
        line = _LINE.match(data, position).group()
        if not line.strip(b"\r\n"):
            return headers, position + len(line)
        field_match = _HEADER_FIELD.match(line)
        text = line.decode("ascii", "surrogateescape")
        if headers and line[:1] in (b" ", b"\t"):
            name, value = headers[-1]
            headers[-1] = (name, value + text)
        elif headers and field_match is None and headers[-1][1].rstrip().endswith(";"):
            # A parameter list folded without the leading whitespace ("Content-Type: multipart/
            # alternative;" then "boundary=..." on a line of its own): still the same field.
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {text}")
        elif field_match is not None:
            headers.append((field_match.group(1).decode("ascii").lower(), text[field_match.start(2) :]))
        else:
            if headers:
                ctx.note("header block ended without a blank line")
            return headers, position
        position += len(line)
    return headers, len(data)


_MEDIA_TYPE = re.compile(r"\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*/\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)")


def _media_type(raw: str | None, default: str) -> tuple[str, str]:
    """(type/subtype, parameter text). An unparseable type means text/plain (RFC 2045 §5.2)."""
    if raw is None:
        return default, ""
    unfolded = _FOLDING.sub(" ", raw)
    match = _MEDIA_TYPE.match(unfolded)
    if match is None:
        return "text/plain", unfolded.partition(";")[2]
    return f"{match.group(1)}/{match.group(2)}".lower(), unfolded[match.end() :]


@dataclass(frozen=True)
class _Delimiter:
    content_end: int  # where the preceding part's content ends (the line break before belongs to the delimiter)
    end: int  # just after the delimiter line
    is_close: bool


def _next_delimiter(data: bytes, boundary: bytes, start: int) -> _Delimiter | None:
    """The next line starting with "--boundary" (a prefix match, as lenient parsers do)."""
    pattern = re.compile(rb"^--" + re.escape(boundary) + rb"(--)?[^\r\n]*(?:\r\n|\n|\r)?", re.MULTILINE)
    match = pattern.search(data, start)
    if match is None:
        return None
    content_end = match.start()
    if data.endswith(b"\r\n", start, content_end):
        content_end -= 2
    elif data.endswith((b"\n", b"\r"), start, content_end):
        content_end -= 1
    return _Delimiter(content_end=content_end, end=match.end(), is_close=match.group(1) is not None)


_BASE64_SEGMENT = re.compile(rb"([A-Za-z0-9+/]+)(=*)")


def _decode_base64(data: bytes) -> bytes | None:
    """Lenient base64: whitespace ignored, concatenated padded chunks decoded one by one, a final
    partial quantum dropped. None when the text contains non-base64 characters (not base64 at all)."""
    cleaned = re.sub(rb"\s+", b"", data)
    if re.search(rb"[^A-Za-z0-9+/=]", cleaned):
        return None
    decoded = bytearray()
    for chars, padding in _BASE64_SEGMENT.findall(cleaned):
        extra = len(chars) % 4
        if extra == 1 or (extra and not padding):
            chars = chars[: len(chars) - extra]
        if chars:
            decoded += base64.b64decode(chars + b"=" * (-len(chars) % 4))
    return bytes(decoded)


def _decode_uuencode(data: bytes) -> bytes:
    decoded = bytearray()
    inside = False
    for line in data.splitlines():
        if not inside:
            inside = line.startswith(b"begin ")
            continue
        if line.strip() in (b"end", b"`"):
            break
        try:
            decoded += binascii.a2b_uu(line)
        except binascii.Error:
            continue  # a damaged line costs only that line
    return bytes(decoded)


def _decode_transfer_encoding(body: bytes, encoding: str | None, ctx: _Decoding) -> tuple[bytes, bool]:
    """(content, decodable)."""
    encoding = (encoding or "").strip().lower()
    if encoding == "base64":
        decoded = _decode_base64(body)
        if decoded is None:
            ctx.note("base64 part contains non-base64 characters; kept undecoded")
            return body, False
        return decoded, True
    if encoding == "quoted-printable":
        return quopri.decodestring(body), True
    if encoding in ("x-uuencode", "uuencode", "x-uue"):
        return _decode_uuencode(body), True
    return body, True


def _parse_entity(
    data: bytes, start: int, parent_boundary: bytes | None, default_type: str, depth: int, ctx: _Decoding
) -> tuple[_Entity, _Delimiter | None]:
    """Parse the entity at `start`, which ends at the parent's next delimiter (returned) or at the end of input.

    Streaming, innermost first: inside a multipart only its own boundary is looked for, and the
    parent's search resumes after its close delimiter. So a part cut off by the end of input (its
    multipart never closed) swallows what follows instead of the parser guessing at outer
    structure, and is flagged `truncated`.
    """
    headers, body_start = _split_header_block(data, start, ctx)
    headers = [(name, header_as_encoded_words(value) if "\x1b" in value else value) for name, value in headers]
    content_type, parameter_text = _media_type(_last_value(headers, "content-type"), default_type)
    entity = _Entity(headers=headers, content_type=content_type, content=b"")
    if content_type.startswith("multipart/"):
        boundary = _parameters(parameter_text, ctx).get("boundary", "")
        if not boundary:
            ctx.note(f"{content_type} without a boundary; kept as one opaque part")
        elif depth >= _MAX_DEPTH:
            ctx.note(f"MIME nesting deeper than {_MAX_DEPTH}; inner structure kept as one part")
        else:
            own_boundary = boundary.encode("utf-8", "surrogateescape")
            first = _next_delimiter(data, own_boundary, body_start)
            if first is not None:
                return _parse_parts(entity, data, first, own_boundary, parent_boundary, depth, ctx)
            ctx.note(f"{content_type} boundary never occurs; kept as one opaque part")
    return _parse_leaf(entity, data, body_start, parent_boundary, depth, ctx)


def _parse_parts(
    entity: _Entity,
    data: bytes,
    first: _Delimiter,
    boundary: bytes,
    parent_boundary: bytes | None,
    depth: int,
    ctx: _Decoding,
) -> tuple[_Entity, _Delimiter | None]:
    """The body parts of a multipart, from its first delimiter on (what precedes it is the preamble)."""
    entity.is_multipart = True
    child_type = "message/rfc822" if entity.content_type == "multipart/digest" else "text/plain"
    delimiter = first
    while not delimiter.is_close and delimiter.end < len(data):
        child, next_delimiter = _parse_entity(data, delimiter.end, boundary, child_type, depth + 1, ctx)
        entity.children.append(child)
        if next_delimiter is None:
            return entity, None
        delimiter = next_delimiter
    if parent_boundary is None:
        return entity, None
    return entity, _next_delimiter(data, parent_boundary, delimiter.end)  # skipping the epilogue


def _parse_leaf(
    entity: _Entity, data: bytes, body_start: int, parent_boundary: bytes | None, depth: int, ctx: _Decoding
) -> tuple[_Entity, _Delimiter | None]:
    delimiter = _next_delimiter(data, parent_boundary, body_start) if parent_boundary is not None else None
    if delimiter is not None:
        body = data[body_start : delimiter.content_end]
    else:
        body = data[body_start:]
        if parent_boundary is not None:
            glued_close = body.find(b"--" + parent_boundary + b"--")  # "last line--boundary--"
            if glued_close >= 0:
                body = body[:glued_close]
                delimiter = _Delimiter(content_end=body_start + glued_close, end=len(data), is_close=True)
            else:
                entity.truncated = True
                ctx.note(f"{entity.content_type} part cut off by the end of the message")
    encoding = _last_value(entity.headers, "content-transfer-encoding")
    entity.content, decodable = _decode_transfer_encoding(body, encoding, ctx)
    entity.undecodable = not decodable
    if entity.content_type in ("message/rfc822", "message/global") and entity.content.strip() and depth < _MAX_DEPTH:
        nested, _ = _parse_entity(entity.content, 0, None, "text/plain", depth + 1, ctx)
        entity.children = [nested]
    return entity, delimiter


# --------------------------------------------------------------------------------------------
# Headers of an entity
# --------------------------------------------------------------------------------------------


def _decoded_headers(entity: _Entity, ctx: _Decoding) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in entity.headers:
        if name not in headers:
            headers[name] = _decode_unstructured(value, ctx).strip()
    return headers


_PARAMETER = re.compile(r'(?:^|;)\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"?|[^;]*)')
_RFC2231_NAME = re.compile(r"(?P<base>[^*]+)(?:\*(?P<index>\d+))?(?P<encoded>\*)?")


def _parameters(text: str, ctx: _Decoding) -> dict[str, str]:
    """Decoded parameters of a structured header (the text after the media type or disposition).

    Handles RFC 2231 continuations and charsets, RFC 2047 words inside quoted values (Outlook
    does that) and raw 8-bit values, all through the same charset repair as bodies.
    """
    plain: dict[str, str] = {}
    segments: dict[str, list[tuple[int, bool, str]]] = {}
    for name, value in _PARAMETER.findall(text.strip()):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:].removesuffix('"'))
        else:
            value = value.strip()
        match = _RFC2231_NAME.fullmatch(name.lower())
        if match is None:
            continue
        if match.group("index") is None and match.group("encoded") is None:
            plain.setdefault(match.group("base"), value)
        else:
            segments.setdefault(match.group("base"), []).append(
                (int(match.group("index") or 0), match.group("encoded") is not None, value)
            )
    params = {name: _decode_unstructured(value, ctx) for name, value in plain.items()}
    for name, parts in segments.items():
        parts.sort(key=lambda segment: segment[0])
        charset = None
        data = b""
        for position, (_index, encoded, value) in enumerate(parts):
            if encoded and position == 0 and value.count("'") >= 2:
                charset, _language, value = value.split("'", 2)
            data += unquote_to_bytes(value) if encoded else value.encode("utf-8", "surrogateescape")
        decoded = decode_bytes(data, charset or "utf-8")
        if decoded.note:
            ctx.note(f"parameter {name}: {decoded.note}")
        params[name] = decoded.text
    return params


def _content_type_params(entity: _Entity, ctx: _Decoding) -> dict[str, str]:
    return _parameters(_media_type(entity.last_header("content-type"), entity.content_type)[1], ctx)


def _disposition(entity: _Entity) -> str | None:
    value = entity.header("content-disposition")
    if value is None:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _filename(entity: _Entity, ctx: _Decoding) -> str | None:
    disposition = entity.header("content-disposition")
    if disposition is not None:
        name = _parameters(_FOLDING.sub(" ", disposition).partition(";")[2], ctx).get("filename", "").strip()
        if name:
            return name
    return _content_type_params(entity, ctx).get("name", "").strip() or None


# --------------------------------------------------------------------------------------------
# Body selection (RFC 8621 §4.1.4)
# --------------------------------------------------------------------------------------------

_INLINE_MEDIA = ("image/", "audio/", "video/")


def _collect_body_parts(
    parts: list[_Entity],
    multipart_type: str,
    in_alternative: bool,
    text_body: list[_Entity] | None,
    html_body: list[_Entity] | None,
    ctx: _Decoding,
) -> None:
    """RFC 8621 §4.1.4 parseStructure, minus its attachment list (every other leaf is an attachment here).

    A body list set to None only disables it for this subtree, as in the RFC's reference code.
    Truncated or undecodable parts are never body: what they would show is not what was sent.
    """
    text_length = len(text_body) if text_body is not None else -1
    html_length = len(html_body) if html_body is not None else -1
    for index, part in enumerate(parts):
        content_type = part.content_type
        if part.is_multipart:
            subtype = content_type.split("/", 1)[1]
            _collect_body_parts(
                part.children, subtype, in_alternative or subtype == "alternative", text_body, html_body, ctx
            )
            continue
        is_media = content_type.startswith(_INLINE_MEDIA)
        is_inline = (
            not part.truncated
            and not part.undecodable
            and _disposition(part) != "attachment"
            and (content_type in ("text/plain", "text/html") or is_media)
            and (index == 0 or (multipart_type != "related" and (is_media or _filename(part, ctx) is None)))
        )
        if not is_inline:
            continue
        if multipart_type == "alternative":
            if content_type == "text/plain" and text_body is not None:
                text_body.append(part)
            elif content_type == "text/html" and html_body is not None:
                html_body.append(part)
            continue
        if in_alternative:
            if content_type == "text/plain":
                html_body = None
            if content_type == "text/html":
                text_body = None
        if text_body is not None:
            text_body.append(part)
        if html_body is not None:
            html_body.append(part)
    if multipart_type == "alternative" and text_body is not None and html_body is not None:
        if text_length == len(text_body) and html_length != len(html_body):
            text_body.extend(html_body[html_length:])
        if html_length == len(html_body) and text_length != len(text_body):
            html_body.extend(text_body[text_length:])


def _body_parts(message: _Entity, ctx: _Decoding) -> tuple[list[_Entity], list[_Entity]]:
    """The leaf parts that make up the text body and the HTML body."""
    text_body: list[_Entity] = []
    html_body: list[_Entity] = []
    if message.is_multipart:
        subtype = message.content_type.split("/", 1)[1]
        parts, in_alternative = message.children, subtype == "alternative"
    else:
        subtype, parts, in_alternative = "mixed", [message], False
    _collect_body_parts(parts, subtype, in_alternative, text_body, html_body, ctx)
    return text_body, html_body


# --------------------------------------------------------------------------------------------
# Part content
# --------------------------------------------------------------------------------------------


def _part_text(part: _Entity, ctx: _Decoding) -> str:
    params = _content_type_params(part, ctx)
    decoded = decode_bytes(part.content, params.get("charset"))
    if decoded.note:
        ctx.note(f"{part.content_type} body: {decoded.note}")
    text = decoded.text.replace("\r\n", "\n").replace("\r", "\n")
    if part.content_type == "text/plain" and params.get("format", "").lower() == "flowed":
        text = _unflow(text, delete_space=params.get("delsp", "").lower() == "yes")
    return text


def _unflow(text: str, delete_space: bool) -> str:
    """RFC 3676 format=flowed: join soft-broken lines (those ending in a space) of equal quote depth."""
    paragraphs: list[str] = []
    current: str | None = None
    current_depth = -1
    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):
            content = content[1:]  # space-stuffing
        quoted = ">" * depth + (" " if depth else "")
        if current is not None and depth == current_depth:
            current += content
        else:
            if current is not None:
                paragraphs.append(current)
            current, current_depth = quoted + content, depth
        is_soft_break = content.endswith(" ") and content != "-- "
        if not is_soft_break:
            paragraphs.append(current)
            current, current_depth = None, -1
        elif delete_space:
            current = current[:-1]
    if current is not None:
        paragraphs.append(current)
    return "\n".join(paragraphs)


def html_to_text(html: str) -> str:
    if not html.strip():
        return ""
    return get_text(html).strip("\n")


def _img_src_filter(tag: str, attribute: str, value: str) -> str | None:
    # Remote images are tracking beacons in an agent's browser; only attached (cid:) images stay.
    if tag == "img" and attribute == "src" and not value.lower().startswith("cid:"):
        return None
    return value


def sanitise_html(html: str) -> str:
    """Strip scripts, styles, event handlers and non-web URL schemes; keep formatting, links and cid: images."""
    return nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "tel", "cid"},
        attribute_filter=_img_src_filter,
    )


def _content_id(part: _Entity) -> str | None:
    value = part.header("content-id")
    if value is None:
        return None
    cleaned = _FOLDING.sub(" ", value).strip().strip("<>").strip()
    return cleaned or None


def _eml_filename(part: _Entity, ctx: _Decoding) -> str:
    raw_subject = part.children[0].header("subject") if part.children else None
    subject = _normalise_whitespace(_decode_unstructured(raw_subject, ctx)) if raw_subject else ""
    stem = re.sub(r'[\\/:*?"<>|\x00-\x1f]+', "_", subject)[:100].strip(" ._")
    return f"{stem or 'message'}.eml"


def _attachment(part: _Entity, ctx: _Decoding) -> MailAttachment:
    filename = _filename(part, ctx)
    if filename is None and part.content_type in ("message/rfc822", "message/global"):
        filename = _eml_filename(part, ctx)
    disposition = _disposition(part)
    content_id = _content_id(part)
    return MailAttachment(
        filename=filename,
        content_type=part.content_type,
        content=part.content,
        content_id=content_id,
        inline=disposition == "inline" or (disposition is None and content_id is not None),
    )


def _leaves(entity: _Entity) -> Iterable[_Entity]:
    """Leaf parts in document order; a message/* part is a leaf (a forwarded mail stays one attachment)."""
    if entity.is_multipart:
        for part in entity.children:
            yield from _leaves(part)
    else:
        yield entity


def _body_text(parts: list[_Entity], ctx: _Decoding) -> str:
    chunks = []
    for part in parts:
        if part.content_type == "text/plain":
            chunks.append(_part_text(part, ctx))
        elif part.content_type == "text/html":
            chunks.append(html_to_text(_part_text(part, ctx)))
    return "\n".join(chunk.strip("\n") for chunk in chunks if chunk.strip())


def _body_html(parts: list[_Entity], ctx: _Decoding) -> str | None:
    if not any(part.content_type == "text/html" for part in parts):
        return None
    chunks = []
    for part in parts:
        if part.content_type == "text/html":
            chunks.append(_part_text(part, ctx))
        elif part.content_type == "text/plain":
            chunks.append(f"<pre>{html_lib.escape(_part_text(part, ctx))}</pre>")
    return sanitise_html("\n".join(chunks))


def _unpack_containers(
    attachments: list[MailAttachment], ctx: _Decoding
) -> tuple[list[MailAttachment], tnef.TnefContents | None]:
    """Outlook's winmail.dat replaced by the files inside it, and the first body a container holds.

    A container that cannot be read, or holds nothing to show (an RTF-only body), stays as it is.
    """
    unpacked: list[MailAttachment] = []
    body = None
    for attachment in attachments:
        if not tnef.is_container(attachment.content_type, attachment.filename, attachment.content):
            unpacked.append(attachment)
            continue
        try:
            contents = tnef.unpack(attachment.content)
        except tnef.TnefUnreadable as error:
            ctx.note(f"TNEF part {attachment.filename or attachment.content_type} kept unread: {error}")
            unpacked.append(attachment)
            continue
        if not contents.files and not (contents.text or contents.html):
            ctx.note(f"TNEF part {attachment.filename or attachment.content_type} holds no files or readable body")
            unpacked.append(attachment)
            continue
        unpacked += [
            MailAttachment(
                filename=inner.filename,
                content_type=inner.content_type,
                content=inner.content,
                content_id=inner.content_id,
                inline=inner.content_id is not None,
            )
            for inner in contents.files
        ]
        if body is None and (contents.text or contents.html):
            body = contents
    return unpacked, body


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------


def _first_declared_charset(entity: _Entity, ctx: _Decoding) -> str | None:
    for part in _leaves(entity):
        charset = _content_type_params(part, ctx).get("charset")
        if charset and part.content_type.startswith("text/"):
            return charset
    return None


def parse_mail(raw: bytes) -> ParsedMail:
    """Parse raw message bytes.

    Raises `MailUnreadable` only when `raw` is blank or does not start with a header field (after
    an optional mbox "From " line): then it is not mail, and guessing would invent a message.
    Everything else yields a `ParsedMail`, with `defects` listing what was repaired.
    """
    if not raw.strip():
        raise MailUnreadable("empty input")
    ctx = _Decoding(defects=[])
    message, _ = _parse_entity(raw.lstrip(), 0, None, "text/plain", 0, ctx)
    if not message.headers:
        raise MailUnreadable("no header fields found")
    ctx.raw_header_charset = _first_declared_charset(message, ctx)

    headers = _decoded_headers(message, ctx)
    text_parts, html_parts = _body_parts(message, ctx)
    body_part_ids = {id(part) for part in text_parts + html_parts if part.content_type in ("text/plain", "text/html")}
    attachments = [_attachment(part, ctx) for part in _leaves(message) if id(part) not in body_part_ids]
    attachments, container_body = _unpack_containers(attachments, ctx)
    text = _body_text(text_parts, ctx)
    if not text and html_parts:
        text = _body_text(html_parts, ctx)
    html = _body_html(html_parts, ctx)
    if not text and container_body is not None:  # the body travelled inside winmail.dat only
        text = container_body.text or html_to_text(container_body.html or "")
        html = html or (sanitise_html(container_body.html) if container_body.html else None)
    senders = _parse_addresses(message.header_values("from")[:1], ctx)
    subject = headers.get("subject")
    return ParsedMail(
        message_id=next(iter(_message_ids(headers.get("message-id"))), None),
        in_reply_to=_message_ids(headers.get("in-reply-to")),
        references=_message_ids(headers.get("references")),
        subject=_normalise_whitespace(subject) if subject is not None else None,
        sender=senders[0] if senders else None,
        reply_to=_parse_addresses(message.header_values("reply-to"), ctx),
        to=_parse_addresses(message.header_values("to"), ctx),
        cc=_parse_addresses(message.header_values("cc"), ctx),
        date=_parse_date(headers.get("date"), ctx),
        text=text,
        html=html,
        new_text=strip_quoted_text(text),
        attachments=attachments,
        headers=headers,
        defects=list(dict.fromkeys(ctx.defects)),  # parts are decoded more than once; report each repair once
    )
