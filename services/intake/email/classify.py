"""Tell a customer's mail from machine-generated mail: auto-replies, bounces and complaints.

None of the machine classes may open a ticket or trigger an acknowledgement (that would start a
mail loop), and a bounce marks its failed recipients undeliverable. Evidence is weighed in order
of reliability:

1. complaint: an ARF report (RFC 5965: ``multipart/report; report-type=feedback-report``, a
   ``message/feedback-report`` part, or a ``Feedback-Type`` field);
2. delivery status notifications (RFC 3464 ``multipart/report; report-type=delivery-status`` or a
   ``message/delivery-status`` part): a bounce when a recipient failed or was delayed; a success
   notice (only "delivered"/"relayed"/"expanded"/"deliverable") is classed ``auto_reply`` — it is automated, must
   not open a ticket, and must *not* mark anybody undeliverable;
3. Amazon SES JSON notifications; ``X-Failed-Recipients``; or a plain-text bounce: MTA wording
   confirmed by a mailer-daemon sender, a bounce subject, a null sender or a returned original;
4. auto-reply: RFC 3834 ``Auto-Submitted`` other than "no", a vendor auto-responder header
   (``X-Autoreply``, ``Precedence: auto_reply``, ...), a localised automatic-reply subject, or an
   out-of-office text confirmed by a machine hint (`autoreply_phrases`);
5. otherwise normal: a customer's message. Some may still not be acknowledged (``acknowledge``):
   list and bulk mail, and mail whose sender asks for no auto-replies (``X-Auto-Response-Suppress``).
   Those headers say how *others* should answer, not that the mail is automatic.

Bounces come before auto-reply headers because MTAs stamp their bounces
``Auto-Submitted: auto-replied`` too; the header says "automated", not "which kind".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Literal

from services.intake.email.autoreply_phrases import auto_reply_subject, out_of_office_phrase
from services.intake.email.mime import ParsedMail

MailClass = Literal["normal", "auto_reply", "bounce", "complaint"]


@dataclass(frozen=True)
class Classification:
    mail_class: MailClass
    reason: str  # short human explanation
    bounced_recipients: list[str]  # bounces: failed recipient addresses, lower-case, in order of appearance
    permanent: bool | None  # bounces: hard (5.x.x) vs soft (4.x.x) when known
    acknowledge: bool = True  # whether an automatic acknowledgement may answer it (never machine mail)


_NORMAL = Classification("normal", "no automated-mail markers", [], None)

# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------

_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_STATUS_CODE = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_REPLY_CODE = re.compile(r"(?<![\d.])([45])\d\d(?:[ -]|$)", re.MULTILINE)


def _header(mail: ParsedMail, name: str) -> str:
    return mail.headers.get(name, "")


def _report_type(mail: ParsedMail) -> str | None:
    content_type = _header(mail, "content-type").lower()
    if not content_type.startswith("multipart/report"):
        return None
    match = re.search(r'report-type\s*=\s*"?([a-z0-9-]+)', content_type)
    return match.group(1) if match else ""


def _attachment_text(mail: ParsedMail, *content_types: str) -> list[str]:
    return [
        attachment.content.decode("utf-8", "replace")
        for attachment in mail.attachments
        if attachment.content_type in content_types
    ]


def _unique_lower(addresses: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for address in addresses:
        seen.setdefault(address.strip().strip("<>.,;:'\"").lower(), None)
    return [address for address in seen if address]


def _sender_address(mail: ParsedMail) -> str:
    return (mail.sender.address if mail.sender else "").lower()


# --------------------------------------------------------------------------------------------
# Complaints (ARF, RFC 5965)
# --------------------------------------------------------------------------------------------


def _complaint(mail: ParsedMail) -> Classification | None:
    reports = _attachment_text(mail, "message/feedback-report")
    feedback_type = _header(mail, "feedback-type")
    if reports or feedback_type or _report_type(mail) == "feedback-report":
        fields = "\n".join(reports)
        match = re.search(r"^feedback-type:\s*([\w-]+)", fields, re.IGNORECASE | re.MULTILINE)
        kind = (match.group(1) if match else feedback_type).lower() or "unspecified"
        return Classification("complaint", f"ARF feedback report ({kind})", [], None)
    # Microsoft's Junk Mail Reporting Program predates ARF: the reported mail comes back attached,
    # stamped with the recipient who marked it as junk.
    if any(re.search(r"^x-hmxmroriginalrecipient:", headers, re.I | re.M) for headers in _returned_headers(mail)):
        return Classification("complaint", "Microsoft JMRP junk report", [], None)
    # Apple Mail's one-click unsubscribe sends a mail on the user's behalf: an opt-out, not a conversation.
    if _header(mail, "x-apple-unsubscribe").strip().lower() == "true":
        return Classification("complaint", "unsubscribe request (Apple Mail)", [], None)
    return None


# --------------------------------------------------------------------------------------------
# Delivery status notifications (RFC 3464)
# --------------------------------------------------------------------------------------------

_DSN_PART_TYPES = ("message/delivery-status", "message/global-delivery-status")
# "deliverable" is what Postfix reports for address verification (sendmail -bv).
_SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded", "deliverable"})


@dataclass(frozen=True)
class _RecipientStatus:
    address: str
    action: str
    status: str


def _dsn_recipients(report: str) -> list[_RecipientStatus]:
    """Per-recipient blocks of a delivery-status body (blocks are separated by blank lines)."""
    recipients = []
    unfolded = re.sub(r"\r?\n[ \t]+", " ", report.replace("\r\n", "\n"))
    for block in re.split(r"\n\s*\n", unfolded):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, colon, value = line.partition(":")
            if colon:
                fields.setdefault(name.strip().lower(), value.strip())
        recipient = fields.get("final-recipient") or fields.get("original-recipient")
        if recipient is None:
            continue
        written = (recipient.partition(";")[2] or recipient).strip().strip("<>")
        if "@" not in written or " " in written:  # not a plain address: pick one out of the text
            match = _ADDRESS.search(written)
            written = match.group(0) if match else ""
        recipients.append(
            _RecipientStatus(
                address=written,
                action=fields.get("action", "").lower(),
                status=fields.get("status", ""),
            )
        )
    return recipients


def _permanence(evidence: list[str]) -> bool | None:
    """Hard when any enhanced status (or, failing that, SMTP reply code) says 5xx; soft on 4xx only."""
    classes = [match.group(1) for text in evidence for match in _STATUS_CODE.finditer(text)]
    if not classes:
        classes = [match.group(1) for text in evidence for match in _REPLY_CODE.finditer(text)]
    if "5" in classes:
        return True
    if "4" in classes:
        return False
    return None


def _delivery_status(mail: ParsedMail, raw: bytes | None) -> Classification | None:
    reports = _attachment_text(mail, *_DSN_PART_TYPES)
    if not reports and _report_type(mail) != "delivery-status":
        return None
    if not reports and raw is not None:
        # Declared a report but its part could not be located (e.g. a boundary that never occurs):
        # the per-recipient fields are still recognisable in the raw message.
        reports = [raw.decode("utf-8", "replace")]
    recipients = [recipient for report in reports for recipient in _dsn_recipients(report)]
    if recipients and all(recipient.action in _SUCCESS_ACTIONS for recipient in recipients):
        actions = sorted({recipient.action for recipient in recipients})
        return Classification("auto_reply", f"delivery status notification: {'/'.join(actions)} (success)", [], None)
    failed = [recipient for recipient in recipients if recipient.action not in _SUCCESS_ACTIONS]
    addresses = _unique_lower([recipient.address for recipient in failed])
    if not addresses:
        addresses = _plain_text_recipients(mail)
    statuses = [recipient.status for recipient in failed]
    permanent = _permanence(statuses) if any(statuses) else _permanence([mail.text])
    return Classification("bounce", "RFC 3464 delivery status notification", addresses, permanent)


# --------------------------------------------------------------------------------------------
# Amazon SES notifications (JSON, delivered by SNS e-mail subscriptions)
# --------------------------------------------------------------------------------------------


def _ses_notification(mail: ParsedMail) -> dict | None:
    if not _sender_address(mail).endswith("amazonaws.com") and not _header(mail, "x-amz-sns-message-id"):
        return None
    start = mail.text.find("{")
    if start < 0:
        return None
    # SNS appends an unsubscribe footer after the JSON and wraps long lines inside its strings.
    decoder = json.JSONDecoder(strict=False)
    try:
        document, _ = decoder.raw_decode(mail.text[start:])
        if isinstance(document, dict) and document.get("Type") == "Notification":  # the SNS envelope
            document, _ = decoder.raw_decode(str(document.get("Message", "")))
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _amazon_ses(mail: ParsedMail) -> Classification | None:
    notification = _ses_notification(mail)
    if notification is None:
        return None
    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    if kind == "Complaint":
        return Classification("complaint", "Amazon SES complaint notification", [], None)
    if kind == "Delivery":
        return Classification("auto_reply", "Amazon SES delivery notification (success)", [], None)
    if kind != "Bounce":
        return None
    bounce = notification.get("bounce") or {}
    recipients = [str(entry.get("emailAddress", "")) for entry in bounce.get("bouncedRecipients") or []]
    bounce_type = bounce.get("bounceType")
    permanent = True if bounce_type == "Permanent" else False if bounce_type == "Transient" else None
    return Classification("bounce", "Amazon SES bounce notification", _unique_lower(recipients), permanent)


# --------------------------------------------------------------------------------------------
# Plain-text bounces
# --------------------------------------------------------------------------------------------

_DAEMON_LOCAL_PART = re.compile(
    r"^(?:mailer[-_.]?daemon|mail[-_.]?daemon|post[-_.]?master|mail[-_.]?delivery(?:[-_.]?(?:system|subsystem))?"
    r"|double-bounce|bounces?|ntmail|smtp-gateway|mail[-_.]?administrator|mdaemon|mailerdaemon)$",
    re.IGNORECASE,
)
_DAEMON_NAME = re.compile(
    r"mail delivery (?:system|subsystem|service)|mailer[- ]daemon|postmaster|mail administrator|mail system",
    re.IGNORECASE,
)
# Subjects MTAs give their non-delivery reports (several languages).
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|returned mail|mail delivery fail|delivery (?:status notification|failure|failed|notification"
    r"|problem|report)|failure notice|delivery has failed|could not be delivered|not delivered|non[- ]?delivery"
    r"|nondeliverable|mail system error|delivery error|mail failure|mail failed|returned to sender"
    r"|error sending your (?:mail|message)"
    r"|warning: could not send|unable to deliver|permanent error|delivery unsuccessful|error sending message"
    r"|unzustellbar|nicht zustellbar|non remis|non distribuibile|no se puede entregar|no entregado"
    r"|notificaci[oó]n de estado de entrega|メールエラー|配信エラー|送信エラー|未配達|退信|投递失败|无法投递|系统退信",
    re.IGNORECASE,
)
# What MTAs write in their reports (postfix, exim, qmail, sendmail, Exchange, Gmail, Yahoo, Japanese
# carriers, ...), and SMTP replies with enhanced status codes ("550 5.1.1 ...").
_BOUNCE_WORDING = re.compile(
    r"this is the mail system at host|i'm sorry to have to inform you that your message could not"
    r"|this is the qmail-send program|this message was created automatically by mail delivery software"
    r"|delivery to the following recipients? (?:failed|has been delayed)|could not be delivered to"
    r"|the following addresses? had permanent fatal errors|the original message was received at"
    r"|did not reach the following recipient|your message (?:did not reach|could not be delivered|wasn't delivered"
    r"|was not delivered|cannot be delivered)|message could not be delivered|unable to deliver (?:your )?message"
    r"|delivery has failed|user unknown|unknown user|mailbox (?:unavailable|full|is full|not found)|no such user"
    r"|recipient addresses? rejected|does not exist|delivery failed|failed permanently|could not deliver"
    r"|returned mail|sorry, no mailbox|undelivered mail|message not delivered|remote host said"
    r"|host or domain name not found|error sending message|mail delivery failed|quota exceeded|over quota"
    r"|failed addresses follow|invalid user address|requested action not taken|transcript of session follows"
    r"|trouble delivering your message|returned permanent errors"
    r"|送信できませんでした|送信に失敗|配信できませんでした|届きませんでした|宛先不明|退信|投递失败"
    r"|^\s*(?:<[^>]*>:?\s*)?[45]\d\d[ -][245]\.\d{1,3}\.\d{1,3}\b",
    re.IGNORECASE | re.MULTILINE,
)
_REPLY_OR_FORWARD = re.compile(r"^\s*(?:re|aw|sv|vs|fwd?|fw|wg|tr|rv|i)\s*:", re.IGNORECASE)
_RETURNED_MESSAGE_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers")


def _is_daemon_sender(mail: ParsedMail) -> bool:
    if mail.sender is None:
        return False
    local_part = mail.sender.address.rsplit("@", 1)[0] if mail.sender.address else mail.sender.name or ""
    return bool(_DAEMON_LOCAL_PART.match(local_part.strip()) or _DAEMON_NAME.search(mail.sender.name or ""))


_ORIGINAL_MESSAGE_MARKER = re.compile(
    r"^\s*(?:[-=|_]+ ?(?:original message|this is a copy of|the original message|returned message|original headers"
    r"|below this line is a copy|message text follows)|received: |return-path: |content-type: message/rfc822)",
    re.IGNORECASE | re.MULTILINE,
)


def _report_text(mail: ParsedMail) -> str:
    """The MTA's own explanation: the text body up to where the returned original starts."""
    marker = _ORIGINAL_MESSAGE_MARKER.search(mail.text)
    return mail.text[: marker.start()] if marker else mail.text


# Lines that name the failed recipient on their own: "<user@host>:" (postfix, qmail), "user@host"
# alone (exim, sendmail), "user@host ... reason" (sendmail's "... User unknown").
_RECIPIENT_LINE = re.compile(r"^\s*<?(" + _ADDRESS.pattern + r")>?(?::|\s*$|\.\.\.|\s+\()", re.MULTILINE)
# Lines about the original's sender or identity, which name addresses that did not fail.
_NOT_ABOUT_RECIPIENTS = re.compile(
    r"^\s*>?\s*(?:from|sender|mail from|reply-to|return-path|message-id|in-reply-to|references|envelope-from)\s*:",
    re.IGNORECASE,
)


def _plain_text_recipients(mail: ParsedMail) -> list[str]:
    """Failed recipients named by a plain-text report, best evidence first."""
    report = "\n".join(line for line in _report_text(mail).split("\n") if not _NOT_ABOUT_RECIPIENTS.match(line))
    explicit = [match.group(1) for match in _RECIPIENT_LINE.finditer(report)]
    explicit = [address for address in explicit if not _is_daemon_address(address)]
    if explicit:
        return _unique_lower(explicit)
    # Otherwise any address the report mentions, except the report's own sender and addressee.
    own = {_sender_address(mail), *(address.address.lower() for address in mail.to)}
    mentioned = [
        address
        for address in _ADDRESS.findall(report)
        if address.lower() not in own and not _is_daemon_address(address)
    ]
    return _unique_lower(mentioned) or _returned_message_recipients(mail)


def _is_daemon_address(address: str) -> bool:
    return bool(re.match(r"mailer[-_.]?daemon@", address, re.IGNORECASE))


def _returned_headers(mail: ParsedMail) -> list[str]:
    """Header blocks of returned or reported original messages."""
    blocks = []
    for text in _attachment_text(mail, *_RETURNED_MESSAGE_TYPES):
        normalised = text.replace("\r\n", "\n")
        blocks.append(re.sub(r"\n[ \t]+", " ", normalised.split("\n\n", 1)[0]))
    return blocks


def _returned_message_recipients(mail: ParsedMail) -> list[str]:
    for headers in _returned_headers(mail):
        match = re.search(r"^to:(.*)$", headers, re.IGNORECASE | re.MULTILINE)
        if match:
            return _unique_lower(_ADDRESS.findall(match.group(1)))
    return []


def forwards_a_delivery_report(mail: ParsedMail) -> bool:
    """A person passing on a bounce ("Fwd: Returned mail"): a real question, but no acknowledgement.

    Acknowledging it would answer mail that is mostly a machine's report, which is how loops start.
    """
    subject = mail.subject or ""
    if not _REPLY_OR_FORWARD.match(subject):
        return False
    return bool(_BOUNCE_SUBJECT.search(subject) or _BOUNCE_WORDING.search(_report_text(mail)))


def _plain_text_bounce(mail: ParsedMail) -> Classification | None:
    """A non-delivery report without RFC 3464 structure.

    MTA wording alone is not enough ("my mail could not be delivered to ..." is a fine thing for a
    customer to write), so it must come with a second sign: a daemon sender, a bounce subject, the
    null envelope sender RFC 5321 prescribes for reports, or a returned copy of the original.
    Replies and forwards never count as reports.
    """
    failed_header = _header(mail, "x-failed-recipients")
    if failed_header:
        addresses = _unique_lower(_ADDRESS.findall(failed_header))
        return Classification("bounce", "X-Failed-Recipients header", addresses, _permanence([mail.text]))
    subject = mail.subject or ""
    daemon = _is_daemon_sender(mail)
    if _REPLY_OR_FORWARD.match(subject) and not daemon:
        return None
    bounce_subject = bool(_BOUNCE_SUBJECT.search(subject))
    wording = bool(_BOUNCE_WORDING.search(_report_text(mail)))
    null_sender = _header(mail, "return-path").strip() == "<>"
    returned_original = any(attachment.content_type in _RETURNED_MESSAGE_TYPES for attachment in mail.attachments)
    if daemon and (bounce_subject or wording):
        reason = "non-delivery report from a mailer daemon"
    elif wording and (bounce_subject or null_sender or returned_original):
        reason = "non-delivery report wording"
    else:
        return None
    return Classification("bounce", reason, _plain_text_recipients(mail), _permanence([_report_text(mail)]))


# --------------------------------------------------------------------------------------------
# Auto-replies (RFC 3834 and common practice)
# --------------------------------------------------------------------------------------------

# Headers that only automatic senders set (values compared lower-case; None: any value but "no").
# Sources: RFC 3834; Gmail (X-Autoreply: yes); cPanel/BoxTrapper (X-Autorespond, X-Precedence);
# Domain Technologie Control (X-AutoReply-From, X-Mail-Autoreply); CommuniGate Pro
# (X-Autogenerated: Reply; its Forward/Redirect/Mirror values pass on a person's mail); FirstClass
# (X-FC-MachineGenerated); Mailtraq (X-POST-MessageClass: 9; Autoresponder); qmail
# (Delivered-To: Autoresponder); ezmlm-weed (X-Amazon-Auto-Reply); iCloud (X-Apple-Action: VACATION).
_AUTO_REPLY_HEADERS: dict[str, tuple[str, ...] | None] = {
    "x-autoreply": None,
    "x-autorespond": None,
    "x-autoresponder": None,
    "x-autoreply-from": None,
    "x-mail-autoreply": None,
    "x-amazon-auto-reply": None,
    "x-autogenerated": ("reply",),
    "precedence": ("auto_reply", "auto-reply"),
    "x-precedence": ("auto_reply", "auto-reply"),
    "x-fc-machinegenerated": ("true",),
    "x-post-messageclass": ("autoresponder",),
    "delivered-to": ("autoresponder",),
    "x-apple-action": ("vacation",),
}
# Weaker signs of a machine: an Exchange inbox rule acted on the mail (an out-of-office reply, but
# also a rule that forwards a person's mail), list-style precedence (Gmail's and vacation(1)'s
# replies say bulk/junk, as do newsletters), the null reverse path of automatic mail. They confirm
# an out-of-office text; alone they prove nothing.
_RULE_HEADERS = ("x-ms-exchange-inbox-rules-loop",)
_MACHINE_PRECEDENCE = ("bulk", "junk")


def _header_value_says(value: str, expected: tuple[str, ...] | None) -> bool:
    value = value.strip().lower()
    if expected is None:
        return bool(value) and value != "no"
    return any(token in value for token in expected)


def _machine_hint(mail: ParsedMail) -> str | None:
    for name in _RULE_HEADERS:
        if _header(mail, name):
            return name
    precedence = _header(mail, "precedence").strip().lower()
    if precedence in _MACHINE_PRECEDENCE:
        return f"Precedence: {precedence}"
    if _header(mail, "return-path").strip() == "<>":
        return "null Return-Path"
    return None


def _auto_reply(mail: ParsedMail) -> Classification | None:
    """RFC 3834, vendor auto-reply headers, a localised auto-reply subject, or an out-of-office text
    confirmed by a machine hint (see `autoreply_phrases` for the wording and why the split).

    ``X-Auto-Response-Suppress`` and list headers are not evidence: Outlook puts the former on
    people's mail, and both ask *others* not to answer automatically (see `_acknowledgement`).
    """
    auto_submitted = _header(mail, "auto-submitted").split(";", 1)[0].strip().lower()
    if auto_submitted and auto_submitted != "no":
        return Classification("auto_reply", f"RFC 3834 Auto-Submitted: {auto_submitted}", [], None)
    for name, expected in _AUTO_REPLY_HEADERS.items():
        value = _header(mail, name)
        if value and _header_value_says(value, expected):
            return Classification("auto_reply", f"auto-responder header {name}: {value.strip()[:60]}", [], None)
    subject = auto_reply_subject(mail.subject or "")
    if subject is not None:
        language, prefix = subject
        return Classification("auto_reply", f"automatic-reply subject ({language}: {prefix!r})", [], None)
    phrase = out_of_office_phrase(mail.new_text)
    hint = _machine_hint(mail) if phrase is not None else None
    if phrase is not None and hint is not None:
        language, words = phrase
        return Classification("auto_reply", f"out-of-office text ({language}: {words!r}) with {hint}", [], None)
    return None


# --------------------------------------------------------------------------------------------
# Acknowledgements of customer mail
# --------------------------------------------------------------------------------------------

# RFC 2369/2919 list fields, and the fields list managers and bulk senders add in their place.
_DISTRIBUTION_HEADERS = (
    "list-id",
    "list-unsubscribe",
    "list-post",
    "list-help",
    "list-subscribe",
    "list-owner",
    "list-archive",
    "mailing-list",
    "x-mailing-list",
    "x-ml-name",
    "feedback-id",  # Google's identifier of bulk senders
)
# MS-OXCMAIL §2.1.3.2.20: "All" or "AutoReply" asks that no auto-reply other than an
# out-of-office notice be sent; an acknowledgement is such an auto-reply.
_SUPPRESSES_ACKNOWLEDGEMENT = frozenset({"all", "autoreply"})


def _acknowledgement(mail: ParsedMail) -> str | None:
    """Why a customer's mail must not be acknowledged automatically, or None when it may be.

    List and bulk distribution (RFC 2369/2919 fields, ``Precedence: list|bulk|junk``), a sender's
    request (``X-Auto-Response-Suppress``), a loop marker (``X-Loop``), or a forwarded delivery
    report: the mail still opens a ticket, but an automatic answer would go to a list, ignore the
    request or feed a loop (RFC 3834 §2).
    """
    present = [name for name in _DISTRIBUTION_HEADERS if _header(mail, name)]
    if present:
        return f"list or bulk distribution ({', '.join(present)})"
    precedence = (_header(mail, "precedence") or _header(mail, "x-precedence")).strip().lower()
    if precedence in ("list", "bulk", "junk"):
        return f"Precedence: {precedence}"
    suppress = {token.strip().lower() for token in _header(mail, "x-auto-response-suppress").split(",")}
    if suppress & _SUPPRESSES_ACKNOWLEDGEMENT:
        return "the sender asks for no auto-replies (X-Auto-Response-Suppress)"
    if _header(mail, "x-loop"):
        return "X-Loop: already handled by an automatic system"
    if forwards_a_delivery_report(mail):
        return "forwards a delivery report"
    return None


def classify_mail(mail: ParsedMail, raw: bytes | None = None) -> Classification:
    """Classify a parsed mail.

    `raw`, the bytes `mail` was parsed from, is optional: it is only searched for delivery-status
    fields when a mail declares itself a delivery report but its MIME structure is too broken for
    the report part to be found.
    """
    machine = _complaint(mail) or _delivery_status(mail, raw) or _amazon_ses(mail) or _plain_text_bounce(mail)
    machine = machine or _auto_reply(mail)
    if machine is not None:
        return replace(machine, acknowledge=False)
    no_acknowledgement = _acknowledgement(mail)
    if no_acknowledgement is not None:
        return Classification("normal", f"customer message, not acknowledged: {no_acknowledgement}", [], None, False)
    return _NORMAL
