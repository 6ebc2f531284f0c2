"""Decode bytes whose declared charset is missing, unknown or wrong.

Real mail is frequently mislabelled: Chinese mailers declare GB2312 (or the non-standard X-GBK)
and send GBK/GB18030 bytes, Korean Outlook declares ks_c_5601-1987 and sends CP949, Taiwanese
webmails declare Big5 while sending UTF-8. `decode_bytes` maps such labels onto the superset
codec that actually decodes the bytes, and falls back step by step instead of failing.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from charset_normalizer import from_bytes

from services.intake.email.iso2022 import decode_stateful, family_of_codec, looks_like_hz, stateful_family

# Labels whose real-world payload is a superset of what the label promises, or that Python's
# codec registry does not know. Keys are normalised with `_normalise_label`.
_SUPERSET_CODECS: dict[str, str] = {
    # Simplified Chinese: GB18030 ⊃ GBK ⊃ GB2312, and senders labelled GB2312 routinely send GBK.
    "gb2312": "gb18030",
    "gb_2312": "gb18030",
    "gb_2312-80": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "csgb2312": "gb18030",
    "chinese": "gb18030",
    # Korean: CP949 (Unified Hangul Code) ⊃ EUC-KR; Python maps ks_c_5601-1987 to the narrower euc_kr.
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "ksc5601": "cp949",
    "ksc_5601": "cp949",
    "euc-kr": "cp949",
    "x-euc-kr": "cp949",
    "korean": "cp949",
    "windows-949": "cp949",
    "x-windows-949": "cp949",
    # Traditional Chinese: Big5-HKSCS ⊃ Big5 (and CP950 additions are mostly covered).
    "big5": "big5hkscs",
    "big-5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "csbig5": "big5hkscs",
    # Japanese: CP932 ⊃ Shift_JIS (Windows additions such as ① and NEC specials).
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "ms_kanji": "cp932",
    "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "csiso2022jp": "iso2022_jp_ext",
    "iso-2022-cn": "iso2022_cn",  # no Python codec: `iso2022.decode_stateful` reads it
    "iso-2022-cn-ext": "iso2022_cn",
    # Western: browsers and mailers treat Latin-1 and ASCII labels as Windows-1252 (curly quotes, €).
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "l1": "cp1252",
    "us-ascii": "cp1252",
    "ascii": "cp1252",
    "ansi_x3.4-1968": "cp1252",
    "windows-874": "cp874",
    "x-windows-874": "cp874",
    "tis-620": "cp874",
    "iso-8859-8-i": "iso8859-8",
    "iso-8859-6-i": "iso8859-6",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
    "x-unknown": "",
    "unknown-8bit": "",
    "x-user-defined": "",
}


@dataclass(frozen=True)
class DecodedText:
    text: str
    codec: str  # the codec that produced `text`
    note: str | None  # why it differs from the declared label, for ParsedMail.defects


def _normalise_label(label: str | None) -> str:
    if not label:
        return ""
    return label.strip().strip("\"'").strip().lower()


def codec_for_label(label: str | None) -> str | None:
    """Python codec name for a MIME charset label, or None when the label is absent or unknown.

    ``iso2022_cn`` is returned for ISO-2022-CN although Python has no such codec (see `iso2022`).
    """
    normalised = _normalise_label(label)
    if not normalised:
        return None
    if normalised in _SUPERSET_CODECS:
        return _SUPERSET_CODECS[normalised] or None
    for candidate in (normalised, normalised.replace("_", "-"), normalised.replace("-", "_")):
        try:
            return codecs.lookup(candidate).name
        except LookupError:
            continue
    return None


def _is_ascii_incompatible(codec: str | None) -> bool:
    # UTF-7, ISO-2022 and HZ encode non-ASCII text in ASCII bytes; UTF-16/32 contain NUL bytes.
    return codec is not None and codec.startswith(("utf-7", "utf-16", "utf-32", "iso2022", "hz"))


def _is_utf8_with_non_ascii(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# Statistical detection needs material: on a handful of bytes it picks exotic code pages.
_MIN_NON_ASCII_FOR_GUESSING = 8
# Without a byte-order mark, a UTF-16/32/7 guess for mail text is practically always wrong.
_NEVER_GUESSED = ["utf_16", "utf_16_be", "utf_16_le", "utf_32", "utf_32_be", "utf_32_le", "utf_7"]
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def _is_mostly_utf8(data: bytes) -> bool:
    """Most non-ASCII bytes form valid UTF-8 sequences: UTF-8 with some damage, not another charset."""
    non_ascii = sum(1 for byte in data if byte >= 0x80)
    in_sequences = sum(len(sequence) for sequence in _UTF8_SEQUENCE.findall(data))
    return in_sequences * 2 > non_ascii


def _guess_codec(data: bytes) -> str | None:
    if sum(1 for byte in data if byte >= 0x80) < _MIN_NON_ASCII_FOR_GUESSING:
        return None
    best = from_bytes(data, cp_exclusion=_NEVER_GUESSED).best()
    return best.encoding if best is not None else None


def _decode_seven_bit(data: bytes, label: str | None, codec: str | None) -> DecodedText | None:
    """All-ASCII bytes that carry CJK text in a stateful encoding, whatever the label says.

    ISO-2022 escapes are decisive; HZ's ``~{`` is only trusted without a label or under an
    ASCII-compatible one, and when it decodes to Chinese. UTF-7 is left to its label (see
    `decode_bytes`): unlabelled, "+" followed by letters is far more often plain text.
    """
    family = stateful_family(data)
    if family is None and codec is not None and codec.startswith("iso2022"):
        family = family_of_codec(codec)
    if family is not None:
        text, used, complete = decode_stateful(data, family)
        notes = []
        if family_of_codec(codec) != family:
            notes.append(f"charset {label!r} label, escape sequences are {family.upper()}")
        if not complete:
            notes.append(f"undecodable {family.upper()} sequences replaced")
        return DecodedText(text, used, "; ".join(notes) or None)
    if codec is None or not _is_ascii_incompatible(codec):
        hz = looks_like_hz(data)
        if hz is not None:
            return DecodedText(hz, "hz", f"charset {label!r} label, bytes are HZ-GB-2312")
    return None


def decode_bytes(data: bytes, label: str | None) -> DecodedText:
    """Decode `data` declared as `label`, never raising.

    Order: ISO-2022 escape sequences (and HZ) in all-ASCII bytes decide over any label; plain
    ASCII is ASCII; valid UTF-8 wins over a legacy label it contradicts; then the label's (superset) codec;
    then UTF-8, also when only slightly damaged; then a statistical guess; finally Windows-1252
    (what unlabelled Western mail nearly always is) or Latin-1, which maps every byte.
    """
    codec = codec_for_label(label)
    if data.isascii():
        seven_bit = _decode_seven_bit(data, label, codec)
        if seven_bit is not None:
            return seven_bit
        if not _is_ascii_incompatible(codec):
            return DecodedText(data.decode("ascii"), "ascii", None)
    if codec is not None and not codec.startswith("utf") and _is_utf8_with_non_ascii(data):
        # Legacy text is practically never valid UTF-8 by accident, while UTF-8 sent under a
        # legacy label (the Big5-labelled-UTF-8 case) is common: the bytes are the better witness.
        return DecodedText(data.decode("utf-8"), "utf-8", f"charset {label!r} label, bytes are UTF-8")
    if codec is not None and codec.startswith(("utf-16", "utf-32")):
        # NUL-laden bytes leave no doubt about the charset: decode what is there, dropping an
        # incomplete final code unit (the part was cut, or a line break was rewritten inside it).
        unit = 2 if codec.startswith("utf-16") else 4
        whole = data[: len(data) - len(data) % unit]
        return DecodedText(whole.decode(codec, errors="replace"), codec, None)
    if codec is not None:
        try:
            return DecodedText(data.decode(codec), codec, None)
        except (UnicodeDecodeError, LookupError):
            pass
    if _is_utf8_with_non_ascii(data):
        note = None if codec is None and not label else f"charset {label!r} label, bytes are UTF-8"
        return DecodedText(data.decode("utf-8"), "utf-8", note)
    if _is_mostly_utf8(data):
        return DecodedText(data.decode("utf-8", errors="replace"), "utf-8", "damaged UTF-8: bad bytes replaced")
    guessed = _guess_codec(data)
    if guessed is not None:
        try:
            return DecodedText(data.decode(guessed), guessed, f"charset {label!r} undecodable, guessed {guessed}")
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return DecodedText(data.decode("cp1252"), "cp1252", f"charset {label!r} undecodable, read as cp1252")
    except UnicodeDecodeError:  # one of the five bytes Windows-1252 leaves undefined
        return DecodedText(data.decode("latin-1"), "latin-1", f"charset {label!r} undecodable, read as Latin-1")
