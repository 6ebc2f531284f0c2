"""Recognise and decode 7-bit stateful CJK encodings whose charset label is missing or wrong.

ISO-2022-JP (RFC 1468, and Microsoft's CP50220/CP50221 variant), ISO-2022-KR (RFC 1557),
ISO-2022-CN (RFC 1922) and HZ (RFC 1843) carry Chinese, Japanese and Korean text in bytes that are
all ASCII: escape sequences (or HZ's ``~{ ~}``) switch character sets. A decoder that sees "all
ASCII" and stops there shows the escapes as text, so the escapes themselves must decide the
charset. Only the designations these standards define count; other escapes (ANSI colours, say)
leave the text alone.
"""

from __future__ import annotations

import base64

ISO2022_JP = "iso-2022-jp"
ISO2022_KR = "iso-2022-kr"
ISO2022_CN = "iso-2022-cn"

_ESC = "\x1b"
_SO, _SI = "\x0e", "\x0f"
# Designations that switch ISO-2022-JP(-1/-2/-3/-2004) away from ASCII: JIS X 0208 ("$@", "$B"),
# GB 2312 ("$A"), "$(" + final byte for JIS X 0212/0213 and KS C 5601, half-width katakana ("(I"),
# and the ISO-2022-JP-2 G2 sets ("." + final byte).
_JP_NON_ASCII = (_ESC + "$@", _ESC + "$B", _ESC + "$A", _ESC + "$(", _ESC + "(I", _ESC + ".")
_JP_BACK_TO_ASCII = (_ESC + "(B", _ESC + "(J")
_KR_DESIGNATION = _ESC + "$)C"
# GB 2312, CNS 11643 plane 1 and ISO-IR-165 as G1; CNS 11643 plane 2 as G2; planes 3-7 as G3.
_CN_DESIGNATIONS = (_ESC + "$)A", _ESC + "$)G", _ESC + "$)E", _ESC + "$*H", _ESC + "$+")
# Python's ISO-2022-JP codecs, narrowest first: each later one knows more character sets.
_JP_CODECS = ("iso2022_jp_ext", "iso2022_jp_2", "iso2022_jp_2004", "iso2022_jp_3")


def stateful_family(data: bytes) -> str | None:
    """The ISO-2022 family whose designations occur in `data`, or None."""
    if b"\x1b" not in data:
        return None
    text = data.decode("latin-1")
    if _KR_DESIGNATION in text:
        return ISO2022_KR
    if any(designation in text for designation in _CN_DESIGNATIONS):
        return ISO2022_CN
    if any(designation in text for designation in _JP_NON_ASCII):
        return ISO2022_JP
    return None


def family_of_codec(codec: str | None) -> str | None:
    """The ISO-2022 family a Python codec name belongs to (``iso2022_jp_ext`` → iso-2022-jp)."""
    if codec is None:
        return None
    bare = codec.replace("_", "").replace("-", "")
    for family in (ISO2022_JP, ISO2022_KR, ISO2022_CN):
        if bare.startswith(family.replace("-", "")):
            return family
    return None


def decode_stateful(data: bytes, family: str) -> tuple[str, str, bool]:
    """(text, codec, complete): `data` decoded as `family`; never raises.

    `complete` is False when some sequences could not be decoded; they become U+FFFD, and no
    escape character is ever left in the text.
    """
    if family == ISO2022_JP:
        for codec in _JP_CODECS:
            try:
                return data.decode(codec), codec, True
            except UnicodeDecodeError:
                continue
        microsoft = _decode_jis_as_cp932(data)
        if microsoft is not None:
            return microsoft, "cp50221", True
        return _without_escapes(data.decode(_JP_CODECS[0], "replace")), _JP_CODECS[0], False
    if family == ISO2022_KR:
        try:
            return data.decode("iso2022_kr"), "iso2022_kr", True
        except UnicodeDecodeError:
            return _without_escapes(data.decode("iso2022_kr", "replace")), "iso2022_kr", False
    text, complete = _decode_iso2022_cn(data)
    return text, "iso-2022-cn", complete


def _without_escapes(text: str) -> str:
    return text.replace(_ESC, "\ufffd")


def _jis_to_shift_jis(first: int, second: int) -> bytes:
    """One JIS X 0208 code (two bytes 0x21-0x7E) as Shift_JIS, the standard arithmetic mapping."""
    lead = (first + 1) // 2 + (0x70 if first <= 0x5E else 0xB0)
    if first % 2:
        trail = second + (0x1F if second <= 0x5F else 0x20)
    else:
        trail = second + 0x7E
    return bytes((lead, trail))


def _decode_jis_as_cp932(data: bytes) -> str | None:
    """ISO-2022-JP as Outlook and Windows write it (CP50220/CP50221/CP50222).

    Their JIS X 0208 also holds the NEC row 13 (①, ㈱, Ⅲ) and the IBM extensions (髙, 﨑) of
    Windows-31J, which Python's ISO-2022-JP codecs refuse; re-encoding each code to Shift_JIS and
    decoding as CP932 reads them. None when the bytes are not well-formed for that either.
    """
    shift_jis = bytearray()
    mode = "ascii"
    position = 0
    while position < len(data):
        byte = data[position]
        if byte == 0x1B:
            sequence = data[position : position + 3]
            if sequence in (b"\x1b(B", b"\x1b(J"):
                mode = "ascii"
            elif sequence in (b"\x1b$B", b"\x1b$@"):
                mode = "jis0208"
            elif sequence == b"\x1b(I":
                mode = "katakana"
            else:
                return None
            position += 3
            continue
        if byte in (0x0E, 0x0F):  # CP50222 shifts into and out of half-width katakana
            mode = "katakana" if byte == 0x0E else "ascii"
        elif byte in (0x0A, 0x0D) or mode == "ascii":
            shift_jis.append(byte)
        elif mode == "katakana":
            if not 0x21 <= byte <= 0x5F:
                return None
            shift_jis.append(byte + 0x80)
        else:
            second = data[position + 1] if position + 1 < len(data) else 0
            if not (0x21 <= byte <= 0x7E and 0x21 <= second <= 0x7E):
                return None
            shift_jis += _jis_to_shift_jis(byte, second)
            position += 1
        position += 1
    try:
        return bytes(shift_jis).decode("cp932")
    except UnicodeDecodeError:
        return None


def _decode_iso2022_cn(data: bytes) -> tuple[str, bool]:
    """(text, complete) of RFC 1922 text. GB 2312 (and the ISO-IR-165 superset, read as GB 2312)
    is decoded; CNS 11643, which Python has no codec for, becomes U+FFFD per character."""
    pieces: list[str] = []
    pending = bytearray()  # ASCII, and GB 2312 re-encoded as EUC-CN
    g1_is_gb2312 = shifted = False
    position = 0

    def undecodable() -> None:
        if pending:
            pieces.append(bytes(pending).decode("gb18030", "replace"))
            pending.clear()
        pieces.append("\ufffd")

    while position < len(data):
        byte = data[position]
        if byte == 0x1B:
            sequence = data[position : position + 4]
            if sequence in (b"\x1b$)A", b"\x1b$)E", b"\x1b$)G"):
                g1_is_gb2312 = sequence != b"\x1b$)G"
            elif sequence.startswith((b"\x1bN", b"\x1bO")):  # a single-shifted CNS 11643 character
                undecodable()
            elif sequence != b"\x1b$*H" and not sequence.startswith(b"\x1b$+"):
                undecodable()  # not an RFC 1922 escape: drop the ESC alone
                position += 1
                continue
            position += 4
            continue
        if byte in (0x0E, 0x0F):
            shifted = byte == 0x0E
        elif byte in (0x0A, 0x0D) or not shifted:
            shifted = shifted and byte not in (0x0A, 0x0D)  # RFC 1922: every line starts unshifted
            pending.append(byte)
        else:
            second = data[position + 1] if position + 1 < len(data) else 0
            if g1_is_gb2312 and 0x21 <= byte <= 0x7E and 0x21 <= second <= 0x7E:
                pending += bytes((byte | 0x80, second | 0x80))
            else:
                undecodable()
            position += 1
        position += 1
    text = "".join(pieces) + bytes(pending).decode("gb18030", "replace")
    return text, "\ufffd" not in text


def _encoded_word(charset: str, raw: str) -> str:
    return f"=?{charset}?B?{base64.b64encode(raw.encode('latin-1')).decode('ascii')}?="


def header_as_encoded_words(value: str) -> str:
    """A raw header value with ISO-2022 runs turned into RFC 2047 encoded words.

    Old Japanese and Korean mailers put ISO-2022 text straight into headers. Its bytes include
    ``(``, ``"`` and ``;``, which derail address and parameter parsing, so each run is wrapped
    into an encoded word before any parsing; encoded-word decoding then handles it like any other.
    `value` is the raw (ASCII, surrogate-escaped) field value; runs end at a line break.
    """
    family = stateful_family(value.encode("utf-8", "surrogateescape"))
    if family == ISO2022_JP:
        return _wrap_jp_runs(value)
    if family in (ISO2022_KR, ISO2022_CN):
        return _wrap_shifted_runs(value, family)
    return value


def _next_jp_run(value: str, start: int) -> int:
    position = value.find(_ESC, start)
    while position >= 0 and not value.startswith(_JP_NON_ASCII, position):
        position = value.find(_ESC, position + 1)
    return position


class _Finder:
    """The first of some markers at or after positions that only move forward.

    Repeated `str.find` calls would rescan the whole tail for a marker that never occurs (a
    quadratic cost on a long header of many runs); here each marker's next position is kept.
    """

    def __init__(self, value: str, markers: tuple[str, ...]):
        self.value = value
        self.found: dict[str, int | None] = dict.fromkeys(markers)  # None: not looked for yet

    def first(self, start: int) -> int:
        """The position of the first marker at or after `start`, or len(value)."""
        best = len(self.value)
        for marker, position in self.found.items():
            if position is None or 0 <= position < start:
                position = self.found[marker] = self.value.find(marker, start)
            if position >= 0:
                best = min(best, position)
        return best


def _wrap_jp_runs(value: str) -> str:
    back_to_ascii, line_breaks = _Finder(value, _JP_BACK_TO_ASCII), _Finder(value, ("\r", "\n"))

    def run_end(start: int) -> int:
        back, line_break = back_to_ascii.first(start), line_breaks.first(start)
        return back + 3 if back < line_break else line_break

    pieces = []
    position = 0
    start = _next_jp_run(value, 0)
    while start >= 0:
        end = run_end(start)
        # Runs separated only by blanks become one word: RFC 2047 drops blanks between words.
        following = _next_jp_run(value, end)
        while following >= 0 and not value[end:following].strip(" \t"):
            end = run_end(following)
            following = _next_jp_run(value, end)
        run = value[start:end]
        if not run.endswith(_JP_BACK_TO_ASCII):
            run += _JP_BACK_TO_ASCII[0]
        pieces += [value[position:start], _encoded_word(ISO2022_JP, run)]
        position = end
        start = following
    pieces.append(value[position:])
    return "".join(pieces)


def _wrap_shifted_runs(value: str, family: str) -> str:
    """ISO-2022-KR/CN: designations announce the sets once, each SO ... SI run uses them."""
    designations = [value[index : index + 4] for index in _find_all(value, (_KR_DESIGNATION, *_CN_DESIGNATIONS))]
    for designation in set(designations):
        value = value.replace(designation, "")
    announced = "".join(dict.fromkeys(designations))
    shift_ins, line_breaks = _Finder(value, (_SI,)), _Finder(value, ("\r", "\n"))

    def run_end(start: int) -> int:
        """Just after the SI that ends the run, or at the line break or end that cuts it off."""
        shift_in, line_break = shift_ins.first(start), line_breaks.first(start)
        return shift_in + 1 if shift_in < line_break else line_break

    pieces = []
    position = 0
    start = value.find(_SO)
    while start >= 0:
        end = run_end(start)
        following = value.find(_SO, end)
        while following >= 0 and not value[end:following].strip(" \t"):  # one word: see _wrap_jp_runs
            end = run_end(following)
            following = value.find(_SO, end)
        pieces += [value[position:start], _encoded_word(family, announced + value[start:end].rstrip(_SI) + _SI)]
        position = end
        start = following
    pieces.append(value[position:])
    return "".join(pieces)


def _find_all(value: str, markers: tuple[str, ...]) -> list[int]:
    found = []
    for marker in markers:
        position = value.find(marker)
        while position >= 0:
            found.append(position)
            position = value.find(marker, position + 1)
    return sorted(found)


def looks_like_hz(data: bytes) -> str | None:
    """`data` decoded as HZ (RFC 1843) when it is well-formed HZ carrying Chinese, else None."""
    if b"~{" not in data or b"~}" not in data:
        return None
    try:
        text = data.decode("hz")
    except UnicodeDecodeError:
        return None
    return text if any("\u4e00" <= character <= "\u9fff" for character in text) else None
