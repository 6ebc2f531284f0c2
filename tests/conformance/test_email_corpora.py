"""Email intake against other projects' test mail, with their machine-readable expectations.

The corpora live in the `shared/corpora` folder *beside* the repository (read-only, never copied
in). Each corpus is one aggregated test that reports `<corpus>: files=N passed=P failed=F
crashed=C` on stdout and in `test-artifacts/conformance-summary.txt`, then asserts the product
owner's acceptance bar. Every file in a corpus is scored; the only exclusions are the two mails
upstream itself skips (sisimai `lhost-postfix-49`/`-50`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pytest

from services.intake.email.classify import Classification, MailClass, classify_mail, forwards_a_delivery_report
from services.intake.email.mime import MailAddress, ParsedMail, html_to_text, parse_mail
from services.notifier.email_out import is_no_reply_address

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPORA = Path(__file__).resolve().parents[3] / "shared" / "corpora"
SUMMARY_FILE = REPO_ROOT / "test-artifacts" / "conformance-summary.txt"

requires_corpora = pytest.mark.skipif(
    not CORPORA.is_dir(),
    reason=f"third-party mail corpora not found at {CORPORA} (they sit beside the repository, not in it)",
)


@dataclass
class Tally:
    corpus: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "name: what differed"
    crashed: list[str] = field(default_factory=list)  # "name: exception"

    @property
    def files(self) -> int:
        return len(self.passed) + len(self.failed) + len(self.crashed)

    def score(self, name: str, check: Callable[[], list[str]]) -> None:
        """Run one file's check; it returns the differences found (empty when the file passes)."""
        try:
            differences = check()
        except Exception as error:  # a crash is a result to count, not to propagate
            self.crashed.append(f"{name}: {type(error).__name__}: {error}")
            return
        if differences:
            self.failed.append(f"{name}: {'; '.join(differences)}")
        else:
            self.passed.append(name)

    def report(self) -> str:
        line = (
            f"{self.corpus}: files={self.files} passed={len(self.passed)} "
            f"failed={len(self.failed)} crashed={len(self.crashed)}"
        )
        print(line)
        for problem in self.crashed + self.failed:
            print(f"  {problem}")
        _write_summary_line(self.corpus, line)
        return line

    def details(self) -> str:
        return "\n".join(self.crashed + self.failed)


def _write_summary_line(corpus: str, line: str) -> None:
    # One line per corpus, replaced on each run, so partial runs keep the other corpora's lines.
    SUMMARY_FILE.parent.mkdir(parents=True, exist_ok=True)
    kept = []
    if SUMMARY_FILE.exists():
        kept = [old for old in SUMMARY_FILE.read_text().splitlines() if not old.startswith(f"{corpus}:")]
    SUMMARY_FILE.write_text("\n".join([*kept, line]) + "\n")


def _normalise_whitespace(text: str | None) -> str:
    return " ".join((text or "").split())


# --------------------------------------------------------------------------------------------
# sisimai: bounces, auto-replies, complaints
# --------------------------------------------------------------------------------------------


def sisimai_expected_class(path: str, expectation: dict) -> MailClass:
    """Map sisimai's per-recipient reasons onto Switchboard's mail classes.

    vacation → auto_reply; feedback → complaint; delivered → auto_reply (a success DSN is automated
    and must not open a ticket, but it must not mark the address undeliverable either, which is
    what "bounce" does); any other reason → bounce; `maildir/not/` → normal.
    """
    if "/maildir/not/" in path:
        return "normal"
    reasons = {recipient["reason"] for recipient in expectation["recipients"]}
    if reasons == {"vacation"} or reasons == {"delivered"}:
        return "auto_reply"
    if reasons == {"feedback"}:
        return "complaint"
    return "bounce"


def would_be_acknowledged(path: Path, result: Classification) -> bool:
    """What the pipeline decides for the mail: a ticket is acknowledged only for a person's message,
    only when intake allows it, and never to a no-reply or list-manager address."""
    mail = parse_mail(path.read_bytes())
    sender = mail.sender.address if mail.sender else ""
    return (
        result.mail_class == "normal"
        and not forwards_a_delivery_report(mail)
        and bool(sender)
        and not is_no_reply_address(sender)
    )


@requires_corpora
def test_sisimai_bounce_corpus() -> None:
    root = CORPORA / "sisimai-bounces"
    manifest = json.loads((root / "expected.json").read_text())
    skipped_upstream = set(manifest["skipped_by_upstream_test"])
    tally = Tally("sisimai-bounces")
    expected_classes = {
        path: sisimai_expected_class(path, expectation)
        for path, expectation in sorted(manifest["expected"].items())
        if Path(path).stem not in skipped_upstream
    }
    results: dict[str, Classification] = {}

    for path, expected in expected_classes.items():

        def check(path: str = path, expected: MailClass = expected) -> list[str]:
            raw = (root / path).read_bytes()
            result = results[path] = classify_mail(parse_mail(raw), raw)
            if result.mail_class != expected:
                return [f"expected {expected}, got {result.mail_class} ({result.reason})"]
            return []

        tally.score(path, check)

    tally.report()
    bounces = [results[path] for path, expected in expected_classes.items() if expected == "bounce" and path in results]
    with_recipients = sum(1 for result in bounces if result.bounced_recipients)
    print(f"sisimai-bounces: bounces with recipients={with_recipients}/{len(bounces)}")
    machine_mail = [path for path, expected in expected_classes.items() if expected != "normal" and path in results]
    acknowledged = [path for path in machine_mail if would_be_acknowledged(root / path, results[path])]
    print(f"sisimai-bounces: acknowledgements that would be sent={len(acknowledged)}")
    assert acknowledged == [], "no bounce, auto-reply or complaint of the corpus may get an acknowledgement"
    assert not tally.crashed, tally.details()
    assert len(tally.passed) >= 0.98 * tally.files, tally.details()
    assert with_recipients >= 0.95 * len(bounces)


# --------------------------------------------------------------------------------------------
# Stalwart mail-parser: MIME structure, encodings, malformed mail
# --------------------------------------------------------------------------------------------


def _stalwart_header(part: dict, name: str) -> object:
    return next((header["value"] for header in part["headers"] if header["name"] == name), None)


def _stalwart_subject(message: dict) -> str:
    value = _stalwart_header(message["parts"][0], "subject")
    return _normalise_whitespace(value["Text"]) if isinstance(value, dict) and "Text" in value else ""


def _stalwart_from(message: dict) -> str | None:
    value = _stalwart_header(message["parts"][0], "from")
    if not isinstance(value, dict) or "Address" not in value:
        return None
    address = value["Address"]
    mailboxes = address.get("List") or [mailbox for group in address.get("Group", []) for mailbox in group["addresses"]]
    return mailboxes[0]["address"] if mailboxes else None


def _stalwart_text(message: dict) -> str:
    """The text body: its text parts, and HTML parts (HTML-only mail) rendered by our converter,
    since the reference's own HTML-to-text rendering is not part of the expectation."""
    chunks = []
    for index in message["text_body"]:
        body = message["parts"][index]["body"]
        if "Text" in body:
            chunks.append(body["Text"])
        elif "Html" in body:
            chunks.append(html_to_text(body["Html"]))
    return _normalise_whitespace("\n".join(chunks))


def matches_reference(expected: str | None, actual: str | None) -> bool:
    """Equality, except that U+FFFD in the reference matches any one character: the reference
    parser replaces bytes it cannot decode, where our charset repair may decode them."""
    if expected is None or actual is None or "\ufffd" not in expected:
        return expected == actual
    return re.fullmatch(re.escape(expected).replace("\ufffd", "."), actual, re.DOTALL) is not None


def _compare_with_stalwart(mail: ParsedMail, reference: dict) -> list[str]:
    expected = {"subject": _stalwart_subject(reference), "from": _stalwart_from(reference)}
    expected["text"] = _stalwart_text(reference)
    actual = {
        "subject": _normalise_whitespace(mail.subject),
        "from": (mail.sender.address or None) if mail.sender else None,
        "text": _normalise_whitespace(mail.text),
    }
    return [
        f"{key}: expected {expected[key]!r:.120} got {actual[key]!r:.120}"
        for key in expected
        if not matches_reference(expected[key], actual[key])
    ]


@requires_corpora
def test_stalwart_mail_parser_corpus() -> None:
    """Subject, From address and text body of every sample, in its LF and its CRLF form.

    Upstream records the expected parse of each sample twice: `NNN.json` for the LF form and
    `NNN.crlf.json` for the CRLF form. A file passes when both forms match.
    """
    root = CORPORA / "stalwart-mail-parser" / "resources" / "eml"
    tally = Tally("stalwart-mail-parser")
    for sample in sorted(root.glob("*/*.eml")):

        def check(sample: Path = sample) -> list[str]:
            lf_form = sample.read_bytes().replace(b"\r\n", b"\n")
            differences = []
            for form, raw, reference in (
                ("LF", lf_form, sample.with_suffix(".json")),
                ("CRLF", lf_form.replace(b"\n", b"\r\n"), sample.with_suffix(".crlf.json")),
            ):
                expected = json.loads(reference.read_text())
                differences += [
                    f"{form} {difference}" for difference in _compare_with_stalwart(parse_mail(raw), expected)
                ]
            return differences

        tally.score(str(sample.relative_to(root)), check)

    tally.report()
    assert not tally.crashed, tally.details()
    assert len(tally.passed) >= 0.95 * tally.files, tally.details()


# --------------------------------------------------------------------------------------------
# mail-charsets: mislabelled charsets, HTML-only, references, threads, a bounce
# --------------------------------------------------------------------------------------------


def _full_address(address: MailAddress) -> str:
    if address.name and address.address:
        return f"{address.name} <{address.address}>"
    return address.name or address.address


def _lines(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


# What each expectation key of mail-charsets/expected.json means for a ParsedMail.
_FIELD_CHECKS: dict[str, Callable[[ParsedMail], object]] = {
    "subject": lambda mail: mail.subject or "",
    "text_body": lambda mail: _lines(mail.text),
    "has_html": lambda mail: mail.html is not None,
    "date_utc": lambda mail: mail.date.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if mail.date else None,
    "from": lambda mail: mail.sender.address if mail.sender else None,
    "from_display_name": lambda mail: mail.sender.name if mail.sender else None,
    "to": lambda mail: ", ".join(address.address for address in mail.to),
    "in_reply_to": lambda mail: " ".join(mail.in_reply_to),
    "references": lambda mail: mail.references,
    "cc_full": lambda mail: [_full_address(address) for address in mail.cc],
}

# php-mime-mail-parser's tests/emails/m018.php (upstream asserts these; expected.json only names the
# feature): subject, sender, a text body containing "My traveling companions!", no HTML, and two
# attachments with the ks_c_5601-1987 encoded name decoded.
_M018 = {
    "subject": "[Korea] Name",
    "from": "name@company.com",
    "has_html": False,
    "attachments": [("사진.JPG", "image/jpeg", 174), ("ATT00001.txt", "text/plain", 25)],
}


# Files expected.json lists without assertions; these are Switchboard's own expectations.
def _check_html_only(mail: ParsedMail, raw: bytes) -> list[str]:
    if _lines(mail.text) == "Hi" and mail.html is not None:
        return []
    return [f"HTML-only body: text {mail.text!r}, html {mail.html!r}"]


def _check_example_bounce(mail: ParsedMail, raw: bytes) -> list[str]:
    result = classify_mail(mail, raw)
    if result.mail_class == "bounce" and result.bounced_recipients == ["ding@ding.de"] and result.permanent:
        return []
    return [f"expected a permanent bounce for ding@ding.de, got {result}"]


_OWN_EXPECTATIONS: dict[str, Callable[[ParsedMail, bytes], list[str]]] = {
    "webklex-php-imap/tests/messages/html_only.eml": _check_html_only,
    "webklex-php-imap/tests/messages/example_bounce.eml": _check_example_bounce,
}


def _check_fields(mail: ParsedMail, expected: dict) -> list[str]:
    differences = []
    for key, value in expected.items():
        if key not in _FIELD_CHECKS:
            differences.append(f"no check for expectation {key!r}")  # fail loudly on new kinds of assertion
            continue
        wanted = _lines(value) if key == "text_body" else value
        actual = _FIELD_CHECKS[key](mail)
        if actual != wanted:
            differences.append(f"{key}: expected {wanted!r}, got {actual!r}")
    return differences


def _check_m018(mail: ParsedMail) -> list[str]:
    differences = _check_fields(mail, {key: _M018[key] for key in ("subject", "from", "has_html")})
    if "My traveling companions!" not in mail.text:
        differences.append(f"text body: {mail.text!r}")
    attachments = [(item.filename, item.content_type, len(item.content)) for item in mail.attachments]
    if attachments != _M018["attachments"]:
        differences.append(f"attachments: {attachments!r}")
    if not any(item.filename == "ATT00001.txt" and b"iPhone" in item.content for item in mail.attachments):
        differences.append("ATT00001.txt content")
    return differences


def thread_sizes(mails: dict[str, ParsedMail]) -> dict[str, int]:
    """Group mails the way intake threads them (Message-ID, In-Reply-To, References) and return
    each mail's thread size."""
    parent: dict[str, str] = {}

    def root_of(node: str) -> str:
        while parent.setdefault(node, node) != node:
            node = parent[node]
        return node

    for name, mail in mails.items():
        own = f"mail:{name}"
        for message_id in [mail.message_id, *mail.in_reply_to, *mail.references]:
            if message_id:
                parent[root_of(f"id:{message_id}")] = root_of(own)
    roots = {name: root_of(f"mail:{name}") for name in mails}
    return {name: sum(1 for other in roots.values() if other == root) for name, root in roots.items()}


@requires_corpora
def test_mail_charsets_corpus() -> None:
    root = CORPORA / "mail-charsets"
    manifest: dict[str, dict] = json.loads((root / "expected.json").read_text())
    tally = Tally("mail-charsets")
    thread_expectations = {
        pattern: entry["expected"]["thread_size"] for pattern, entry in manifest.items() if "*" in pattern
    }

    def thread_check(sample: Path, pattern: str) -> list[str]:
        siblings = sorted(sample.parent.glob(Path(pattern).name))
        sizes = thread_sizes({path.name: parse_mail(path.read_bytes()) for path in siblings})
        wanted = thread_expectations[pattern][sample.name]
        return [] if sizes[sample.name] == wanted else [f"thread size {sizes[sample.name]}, expected {wanted}"]

    for sample in sorted(root.rglob("*.eml")):
        name = str(sample.relative_to(root))

        def check(sample: Path = sample, name: str = name) -> list[str]:
            raw = sample.read_bytes()
            mail = parse_mail(raw)
            thread_pattern = next((pattern for pattern in thread_expectations if sample.match(pattern)), None)
            if thread_pattern is not None:
                return thread_check(sample, thread_pattern)
            if name.endswith("m018.eml"):
                return _check_m018(mail)
            if name in _OWN_EXPECTATIONS:
                return _OWN_EXPECTATIONS[name](mail, raw)
            if name in manifest:
                return _check_fields(mail, manifest[name]["expected"])
            return [f"no expectation for {name}"]

        tally.score(name, check)

    tally.report()
    assert not tally.crashed and not tally.failed, tally.details()
