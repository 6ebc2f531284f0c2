"""Cut quoted history and signatures off a plain-text reply, keeping what the sender newly wrote.

Replies put the new text on top and the history below one of a few recognisable separators:
an attribution line ("On … wrote:", "Am … schrieb …:", "Le … a écrit :", "El … escribió:"), an
Outlook "-----Original Message-----" banner or "From: … / Sent: …" header block, or a run of
"> " lines. Signatures start at the RFC 3676 "-- " delimiter or a mobile "Sent from my …" line.
Forwarded messages ("---------- Forwarded message ---------") are *not* cut: when a customer
forwards something to support, the forwarded mail is the content.
"""

from __future__ import annotations

import re

# Attribution lines. Clients wrap long ones, so they are matched against up to three joined lines.
_ATTRIBUTION = re.compile(
    r"""^\s*(?:
        (?:on|op|il|em|den|på)\s.+\s(?:wrote|schreef|ha\sscritto|escreveu|skrev)\s*:   # en, nl, it, pt, sv/da/no
      | am\s.+\s(?:schrieb|geschrieben)(?:\s.+)?\s*:                                # de
      | le\s.+\s(?:a\s+écrit|a\s+ecrit)\s*:                                         # fr
      | el\s.+\s(?:escribió|escribio)\s*:                                           # es
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
# "John Doe wrote:" alone is too common in ordinary prose; it counts only right above a "> " quote.
_BARE_ATTRIBUTION = re.compile(r"^\s*\S.{0,200}\s(?:wrote|schrieb|a\s+écrit|escribió)\s*:\s*$", re.IGNORECASE)

_ORIGINAL_MESSAGE_BANNER = re.compile(
    r"""^\s*-{2,}\s*(?:
        original\s+message | ursprüngliche\s+nachricht | message\s+d'origine | mensaje\s+original
      | messaggio\s+originale | mensagem\s+original | oorspronkelijk\s+bericht | originalmeddelande
    )\s*-{2,}\s*$""",
    re.IGNORECASE | re.VERBOSE,
)

# Outlook's header block: a "From:" line followed within a few lines by "Sent:"/"Date:" (localised).
# "\s*(?:\*\s*)?:" rather than "\s*\*?\s*:": two adjacent "\s*" backtrack quadratically over a
# long run of spaces without a colon.
_HEADER_FROM = re.compile(r"^\s*\*?(?:from|von|de|da|van|från)\s*(?:\*\s*)?:", re.IGNORECASE)
_HEADER_SENT = re.compile(
    r"^\s*\*?(?:sent|date|gesendet|datum|envoyé|date\s+d'envoi|enviado(?:\s+el)?|fecha|inviato|data|verzonden|skickat)"
    r"\s*(?:\*\s*)?:",
    re.IGNORECASE,
)
_OUTLOOK_RULE = re.compile(r"^\s*_{20,}\s*$")

_MAX_BARE_SIGNATURE_LINES = 10
_MOBILE_SIGNATURE = re.compile(
    r"^\s*(?:sent\s+from\s+my|get\s+outlook\s+for|gesendet\s+von\s+meinem|von\s+meinem\s+\S+\s+gesendet"
    r"|envoyé\s+de\s+mon|enviado\s+desde\s+mi|inviato\s+da(?:l\s+mio|\s+iphone)|verzonden\s+vanaf\s+mijn)\b",
    re.IGNORECASE,
)


def _is_quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


_MAX_ATTRIBUTION_LENGTH = 400  # attribution lines are short; this also bounds the regex work per line


def _attribution_at(lines: list[str], index: int) -> bool:
    if not lines[index].strip():
        return False  # the attribution, if any, is found from its own first line
    for span in (1, 2, 3):
        if index + span > len(lines):
            break
        joined = " ".join(line.strip() for line in lines[index : index + span])
        if len(joined) > _MAX_ATTRIBUTION_LENGTH:
            break
        # Every attribution ends in a colon: checking that first spares the pattern nearly every line.
        if joined.rstrip().endswith(":") and _ATTRIBUTION.match(joined):
            return True
    if lines[index].rstrip().endswith(":") and _BARE_ATTRIBUTION.match(lines[index]):
        following = next((lines[after] for after in range(index + 1, len(lines)) if lines[after].strip()), "")
        return _is_quoted(following)
    return False


def _outlook_header_block_at(lines: list[str], index: int) -> bool:
    if not _HEADER_FROM.match(lines[index]):
        return False
    return any(_HEADER_SENT.match(line) for line in lines[index + 1 : index + 4])


def _quoted_tail_start(lines: list[str]) -> int:
    """Index from which every line is quoted or blank (len(lines) when the last line is new text)."""
    start = len(lines)
    while start > 0 and (_is_quoted(lines[start - 1]) or not lines[start - 1].strip()):
        start -= 1
    return start


def _history_start(lines: list[str]) -> int | None:
    """Index of the first line that belongs to quoted history, or None."""
    quoted_tail = _quoted_tail_start(lines)
    for index, line in enumerate(lines):
        if _ORIGINAL_MESSAGE_BANNER.match(line) or _attribution_at(lines, index):
            return index
        if _outlook_header_block_at(lines, index):
            # Outlook often draws a rule right above the header block; it belongs to the history.
            previous = index - 1
            while previous >= 0 and not lines[previous].strip():
                previous -= 1
            return previous if previous >= 0 and _OUTLOOK_RULE.match(lines[previous]) else index
        if index >= quoted_tail and _is_quoted(line):
            return index
    return None


def _signature_start(lines: list[str]) -> int | None:
    lines_with_text_after = sum(1 for line in lines if line.strip())
    for index, line in enumerate(lines):
        if line.strip():
            lines_with_text_after -= 1
        if line == "-- ":
            return index
        # Some clients strip the trailing space; a bare "--" counts only if a short block follows.
        if line == "--" and lines_with_text_after <= _MAX_BARE_SIGNATURE_LINES:
            return index
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].strip():
            return index if _MOBILE_SIGNATURE.match(lines[index]) else None
    return None


def strip_quoted_text(text: str) -> str:
    """The newly written part of `text`; `text` itself when stripping would leave nothing."""
    lines = text.split("\n")
    history = _history_start(lines)
    if history is not None:
        lines = lines[:history]
    # Inline replies interleave answers with "> " quotes: keep the answers, drop the quotes.
    lines = [line for line in lines if not _is_quoted(line)]
    signature = _signature_start(lines)
    if signature is not None:
        lines = lines[:signature]
    stripped = "\n".join(lines).strip()
    return stripped or text.strip()
