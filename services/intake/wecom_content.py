"""What WeChat Customer Service (WeCom kf) sends, as a help desk reads it. Pure.

A callback (`kf_msg_or_event`, https://developer.work.weixin.qq.com/document/path/94670) only says
"there is something to fetch" for a customer-service account (`OpenKfId`), with a `Token` that
lets `kf/sync_msg` fetch it. Each fetched message (`msg_list` items) is one of:
- a customer's message (`origin` 3): text, image, voice, video, file, location, link ... ;
- an event (`origin` 4), of which `enter_session` (the customer opened the chat) is greeted with
  its `welcome_code`;
- a servicer's message written in the WeCom client (`origin` 5), or anything else: not ours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.intake.wecom_crypto import CallbackRefused

KF_EVENT = "kf_msg_or_event"
CUSTOMER = 3
SYSTEM_EVENT = 4
# Help-desk texts are short; a link's description or a location's address is cut here.
MAX_PART_CHARS = 4000


@dataclass(frozen=True)
class KfCallback:
    """A callback saying there are messages to fetch for `open_kfid`, fetchable with `token` for 10 minutes."""

    open_kfid: str
    token: str


def kf_callback(fields: dict[str, str], corp_id: str) -> KfCallback | None:
    """The callback's meaning, from its decrypted XML's fields; None for other events (WeCom sends every
    event of the app to one URL). Raises CallbackRefused when it names another corp."""
    to_user = fields.get("ToUserName")
    if to_user and to_user != corp_id:
        raise CallbackRefused("the callback is addressed to another corp ID")
    if fields.get("MsgType") != "event" or fields.get("Event") != KF_EVENT:
        return None
    open_kfid, token = fields.get("OpenKfId", ""), fields.get("Token", "")
    if not open_kfid or not token:
        raise CallbackRefused(f"{KF_EVENT} without OpenKfId or Token")
    return KfCallback(open_kfid, token)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class _Text(_Lenient):
    content: str = ""


class _Media(_Lenient):
    media_id: str = Field(min_length=1)


class _Location(_Lenient):
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


class _Link(_Lenient):
    title: str = ""
    desc: str = ""
    url: str = ""


class _Event(_Lenient):
    event_type: str
    open_kfid: str = ""
    external_userid: str = ""
    welcome_code: str | None = None


class _Message(_Lenient):
    msgid: str = Field(min_length=1, max_length=128)
    open_kfid: str = Field(min_length=1, max_length=128)
    external_userid: str = Field(default="", max_length=128)
    send_time: int
    origin: int
    msgtype: str
    text: _Text | None = None
    image: _Media | None = None
    voice: _Media | None = None
    video: _Media | None = None
    file: _Media | None = None
    location: _Location | None = None
    link: _Link | None = None
    event: _Event | None = None


@dataclass(frozen=True)
class WecomMedia:
    media_id: str
    # What the customer sent, as a placeholder text names it: "image", "voice message" ...
    label: str
    # When the download says nothing better (WeCom's voice is AMR).
    content_type: str


@dataclass(frozen=True)
class CustomerMessage:
    msgid: str
    open_kfid: str
    external_userid: str
    sent_at: datetime
    text: str
    media: tuple[WecomMedia, ...] = ()

    @property
    def address(self) -> str:
        """The reply route's address: the account and the customer (one conversation)."""
        return f"{self.open_kfid}:{self.external_userid}"


@dataclass(frozen=True)
class Greeting:
    """The customer opened the chat: `welcome_code` lets us send one welcome (within 20 seconds)."""

    msgid: str
    open_kfid: str
    external_userid: str
    welcome_code: str


@dataclass(frozen=True)
class Ignored:
    msgid: str | None
    reason: str
    malformed: bool = False


KfMessage = CustomerMessage | Greeting | Ignored

_MEDIA = {
    "image": ("image", "image/jpeg"),
    "voice": ("voice message", "audio/amr"),
    "video": ("video", "video/mp4"),
    "file": ("file", "application/octet-stream"),
}


def normalise(item: object) -> KfMessage:
    """What one `msg_list` item of `kf/sync_msg` means to a help desk. Never raises."""
    msgid = item.get("msgid") if isinstance(item, dict) and isinstance(item.get("msgid"), str) else None
    try:
        message = _Message.model_validate(item)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        return Ignored(msgid, f"malformed message: {location}: {first['msg']}", malformed=True)
    if message.origin == SYSTEM_EVENT and message.msgtype == "event" and message.event is not None:
        event = message.event
        if event.event_type == "enter_session" and event.welcome_code and event.external_userid:
            open_kfid = event.open_kfid or message.open_kfid
            return Greeting(message.msgid, open_kfid, event.external_userid, event.welcome_code)
        return Ignored(message.msgid, f"{event.event_type} events carry no customer message")
    if message.origin != CUSTOMER:
        return Ignored(message.msgid, f"origin {message.origin} is not a customer's message")
    if not message.external_userid:
        return Ignored(message.msgid, "a customer's message without external_userid", malformed=True)
    text, media = _content(message)
    return CustomerMessage(
        msgid=message.msgid,
        open_kfid=message.open_kfid,
        external_userid=message.external_userid,
        sent_at=datetime.fromtimestamp(message.send_time, UTC),
        text=text,
        media=media,
    )


def _content(message: _Message) -> tuple[str, tuple[WecomMedia, ...]]:
    kind = message.msgtype
    if kind == "text" and message.text is not None and message.text.content.strip():
        return message.text.content, ()
    if kind in _MEDIA and (media := getattr(message, kind)) is not None:
        label, content_type = _MEDIA[kind]
        return f"[{label}]", (WecomMedia(media.media_id, label, content_type),)
    if kind == "location" and message.location is not None:
        place = message.location
        named = ", ".join(part for part in (place.name, place.address) if part)
        where = f"{place.latitude}, {place.longitude}"
        return f"[location: {named[:MAX_PART_CHARS]} ({where})]" if named else f"[location: {where}]", ()
    if kind == "link" and message.link is not None:
        link = message.link
        lines = [f"[link: {link.title[:MAX_PART_CHARS]}]" if link.title else "[link]"]
        lines += [part[:MAX_PART_CHARS] for part in (link.desc, link.url) if part]
        return "\n".join(lines), ()
    # Mini programs, business cards, channel videos ...: the agent learns something came.
    return f"[{kind[:64]} message: open WeChat Customer Service to see it]", ()
