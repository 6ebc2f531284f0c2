"""Hypothesis strategies for what clients may send intake: JSON of any shape and depth, header bytes,
form encodings, and Telegram- and Slack-shaped payloads whose fields are plausible or anything at all.

Plausible values make some examples valid messages, so that the paths past validation are fuzzed
too; `anything` in a field makes the rest malformed in every way a JSON value can be.
"""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import strategies as st

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


def nested(depth: int, kind: str) -> bytes:
    """JSON nested `depth` levels deep: arrays, or objects."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


deep_json = st.builds(nested, st.integers(min_value=1, max_value=3000), st.sampled_from(["array", "object"]))


def plausible_or_anything(strategy: st.SearchStrategy, odds: int = 3) -> st.SearchStrategy:
    """`strategy`, or about once in `odds` draws any JSON value."""
    return st.integers(min_value=1, max_value=odds).flatmap(lambda draw: json_values if draw == odds else strategy)


def as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


# --- HTTP ------------------------------------------------------------------------------------------

# Header values as they come off the wire: any byte but CR, LF and NUL (which HTTP/1.1 servers refuse).
header_bytes = st.binary(max_size=60).map(lambda value: value.translate(None, b"\r\n\x00"))
header_values = st.one_of(header_bytes, st.text(max_size=40).map(as_bytes), st.just(b"\xe9"))
path_segments = st.one_of(
    st.text(max_size=30).map(lambda text: quote(text, safe="")),
    st.sampled_from(["SB-1001", "..%2F..%2Fetc%2Fpasswd", "%00", "%ff%fe", "a%2Fb", "app.js", "index.html", "."]),
)
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "multipart/form-data",
    "text/plain",
    "application/xml",
]
content_types = st.one_of(st.sampled_from(CONTENT_TYPES), header_bytes)

# --- Forms -----------------------------------------------------------------------------------------

VALID_FORM = {"name": "Ana", "email": "ana@example.com", "subject": "Cannot log in", "message": "It says no."}
FORM_FIELDS = [*VALID_FORM, "phone"]
form_values = st.one_of(
    st.sampled_from(["Ana", "ana@example.com", "+49 30 1234567", ""]), st.binary(max_size=40), st.text(max_size=40)
)
# A valid submission with some fields replaced, dropped or added.
form_fields = st.builds(
    lambda changed, dropped: {**{k: v for k, v in VALID_FORM.items() if k not in dropped}, **changed},
    st.dictionaries(st.sampled_from(FORM_FIELDS) | st.text(max_size=8), form_values, max_size=3),
    st.sets(st.sampled_from(FORM_FIELDS), max_size=2),
)


def urlencoded(fields: dict[str, str | bytes]) -> bytes:
    return b"&".join(quote(name).encode() + b"=" + quote(as_bytes(value)).encode() for name, value in fields.items())


def json_form(fields: dict[str, str | bytes]) -> bytes:
    return json.dumps({name: as_bytes(value).decode("latin-1") for name, value in fields.items()}).encode()


def multipart(parts: list[tuple[bytes, bytes, bytes]]) -> bytes:
    """Parts of (Content-Disposition parameters, extra header lines, body), boundary "b"."""
    body = b"".join(
        b"--b\r\nContent-Disposition: form-data; " + disposition + b"\r\n" + extra + b"\r\n" + content + b"\r\n"
        for disposition, extra, content in parts
    )
    return body + b"--b--\r\n"


multipart_parts = st.one_of(
    form_fields.map(lambda fields: [(f'name="{k}"'.encode(), b"", as_bytes(v)) for k, v in fields.items()]),
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(FORM_FIELDS).map(lambda name: f'name="{name}"'.encode()),
                st.just(b'name="shot"; filename="shot.png"'),
                header_bytes,
            ),
            st.sampled_from([b"", b"Content-Type: x; charset=latin-1\r\n", b"Content-Type: x; charset=rot13\r\n"]),
            st.binary(max_size=60),
        ),
        max_size=6,
    ),
)

# --- Telegram --------------------------------------------------------------------------------------

telegram_ids = st.integers(min_value=-(2**52), max_value=2**52)
short_text = st.text(max_size=40)
location = st.fixed_dictionaries(
    {"latitude": st.floats(min_value=-90, max_value=90), "longitude": st.floats(min_value=-180, max_value=180)}
)
telegram_file = st.fixed_dictionaries(
    {"file_id": st.text(min_size=1, max_size=10)},
    optional={
        "file_name": short_text,
        "mime_type": st.sampled_from(["image/png", "application/pdf", "application/x-msdownload"]),
        "file_size": st.integers(min_value=-1, max_value=2**40),
    },
)
entity = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["text_link", "text_mention", "url", "bold", "mention"]),
        "offset": st.integers(min_value=-5, max_value=60),
        "length": st.integers(min_value=-5, max_value=60),
    },
    optional={"url": st.text(max_size=30), "user": st.fixed_dictionaries({"id": telegram_ids})},
)


def obj(required: dict, **optional: st.SearchStrategy) -> st.SearchStrategy:
    """JSON objects with the `required` fields and any of the `optional` ones."""
    return st.fixed_dictionaries(required, optional=optional)


user = obj({"id": telegram_ids, "first_name": short_text})
MESSAGE_CONTENT = {
    "text": st.text(min_size=1, max_size=80),
    "caption": st.text(min_size=1, max_size=80),
    "entities": st.lists(plausible_or_anything(entity), max_size=4),
    "caption_entities": st.lists(plausible_or_anything(entity), max_size=4),
    "photo": st.lists(obj({"file_id": st.text(min_size=1, max_size=10), "width": st.integers()}), max_size=3),
    "document": telegram_file,
    "voice": telegram_file,
    "contact": obj({"phone_number": short_text, "first_name": short_text}, user_id=telegram_ids),
    "location": location,
    "venue": obj({"location": location, "title": short_text, "address": short_text}),
    "poll": obj({"question": short_text, "options": st.lists(obj({"text": short_text}), max_size=4)}),
    "dice": obj({"emoji": st.sampled_from(["🎲", "🎯"]), "value": st.integers(min_value=1, max_value=64)}),
    "story": obj({"chat": obj({"id": telegram_ids, "type": st.just("channel")}, username=short_text)}),
    "game": obj({"title": short_text, "description": short_text, "photo": st.just([])}),
    "checklist": obj({"title": short_text, "tasks": st.lists(obj({"id": telegram_ids, "text": short_text}))}),
    "quote": obj({"text": short_text, "position": st.integers(min_value=0, max_value=100)}),
    "sticker": obj({"file_id": short_text}, emoji=short_text),
    "forward_origin": obj(
        {"type": st.sampled_from(["user", "hidden_user", "chat", "channel"]), "date": st.integers(min_value=0)},
        sender_user_name=short_text,
        sender_user=user,
        chat=obj({"id": telegram_ids, "title": short_text}),
    ),
    "reply_to_message": obj({"message_id": telegram_ids}),
    "external_reply": json_values,
}
telegram_message = st.fixed_dictionaries(
    {
        "message_id": plausible_or_anything(telegram_ids, odds=10),
        # Until 2100; later dates are no Telegram message's.
        "date": plausible_or_anything(st.integers(min_value=0, max_value=4_102_444_800), odds=10),
        "chat": plausible_or_anything(
            obj({"id": telegram_ids, "type": st.sampled_from(["private", "private", "group"])}), odds=10
        ),
        "from": plausible_or_anything(obj({"id": telegram_ids, "is_bot": st.booleans(), "first_name": short_text}), 10),
    },
    optional={name: plausible_or_anything(strategy, odds=5) for name, strategy in MESSAGE_CONTENT.items()},
)
telegram_updates = st.one_of(
    st.fixed_dictionaries(
        {
            "update_id": plausible_or_anything(st.integers(min_value=0, max_value=2**40), odds=10),
            "message": plausible_or_anything(telegram_message, odds=10),
        }
    ),
    st.fixed_dictionaries(
        {"update_id": st.integers(min_value=0, max_value=2**40), "edited_message": telegram_message},
        optional={"callback_query": json_values},
    ),
    # A pressed button: mostly CSAT ratings (csat:<ticket>:<resolution>:<score>), some of them malformed.
    st.fixed_dictionaries(
        {
            "update_id": st.integers(min_value=0, max_value=2**40),
            "callback_query": plausible_or_anything(
                obj(
                    {
                        "id": short_text,
                        "from": obj({"id": telegram_ids, "is_bot": st.just(False), "first_name": short_text}),
                        "message": obj(
                            {
                                "message_id": st.integers(),
                                "chat": obj({"id": telegram_ids, "type": st.sampled_from(["private", "group"])}),
                            }
                        ),
                        "data": st.one_of(
                            st.builds(
                                "csat:SB-{}:{}:{}".format,
                                st.integers(min_value=0, max_value=2000),
                                st.integers(min_value=-1, max_value=3),
                                st.integers(min_value=0, max_value=6),
                            ),
                            short_text,
                        ),
                    }
                ),
                odds=10,
            ),
        }
    ),
)

# --- Slack -----------------------------------------------------------------------------------------
# File URLs stay on loopback or off Slack's hosts: the tests never reach outside this machine.

slack_ts = plausible_or_anything(st.sampled_from(["1718000000.000100", "1718000001.000200", "1.1", "99999999999.1"]))
slack_file = st.fixed_dictionaries(
    {"id": st.text(max_size=12)},
    optional={
        "name": plausible_or_anything(short_text),
        "mimetype": plausible_or_anything(st.sampled_from(["image/png", "text/html", "application/x-msdownload"])),
        "size": plausible_or_anything(st.integers()),
        "url_private_download": st.sampled_from(["https://example.com/f", "http://[::1", "not a url", ""]),
        "mode": plausible_or_anything(st.sampled_from(["hosted", "tombstone", "hidden_by_limit", "external"])),
        "file_access": plausible_or_anything(st.just("check_file_info")),
    },
)
slack_attachment = st.fixed_dictionaries(
    {},
    optional={
        "text": short_text,
        "fallback": short_text,
        "from_url": st.sampled_from(["https://example.com", "https://switchboard-test.slack.com/archives/C1/p1"]),
        "author_name": short_text,
        "is_share": st.booleans(),
        "is_msg_unfurl": st.booleans(),
        "files": st.lists(slack_file, max_size=1),
    },
)
slack_blocks = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.just("rich_text"),
            "elements": st.lists(
                st.fixed_dictionaries(
                    {
                        "type": st.just("rich_text_section"),
                        "elements": st.lists(
                            obj({"type": st.just("link"), "url": short_text}, text=short_text) | json_values,
                            max_size=3,
                        ),
                    }
                ),
                max_size=2,
            ),
        }
    ),
    max_size=2,
)
slack_message = st.fixed_dictionaries(
    {
        "type": st.just("message"),
        "channel": plausible_or_anything(st.sampled_from(["C0CUSTOMERS", "C0CUSTOMERS", "C0ELSEWHERE"])),
        "user": plausible_or_anything(st.sampled_from(["U0CUSTOMER", "U0CUSTOMER", "U0ANA"])),
        "ts": slack_ts,
    },
    optional={
        "text": plausible_or_anything(st.text(max_size=60)),
        "subtype": plausible_or_anything(st.sampled_from(["file_share", "message_deleted", "bot_message"])),
        "files": plausible_or_anything(st.lists(plausible_or_anything(slack_file), max_size=2)),
        "attachments": plausible_or_anything(st.lists(plausible_or_anything(slack_attachment), max_size=2)),
        "blocks": plausible_or_anything(slack_blocks),
        "message": json_values,
        "previous_message": json_values,
        "thread_ts": slack_ts,
        "bot_id": json_values,
    },
)
slack_message_changed = st.builds(
    lambda event, new, old: {**event, "subtype": "message_changed", "message": new, "previous_message": old},
    slack_message,
    slack_message,
    plausible_or_anything(slack_message),
)
slack_payloads = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("event_callback"), "event_id": st.text(min_size=1, max_size=12)},
        optional={"event": slack_message | slack_message_changed},
    ),
    st.fixed_dictionaries(
        {
            "type": plausible_or_anything(st.sampled_from(["event_callback", "url_verification", "block_actions"])),
            "event_id": plausible_or_anything(st.text(max_size=12)),
        },
        optional={
            "event": plausible_or_anything(slack_message),
            "authorizations": json_values,
            "team": json_values,
            "user": json_values,
            "enterprise": json_values,
            "is_ext_shared_channel": st.booleans(),
            "response_urls": json_values,
            "actions": json_values,
            "view": json_values,
            "challenge": json_values,
        },
    ),
)
# A customer's file share in a support channel, its files described in every way.
slack_file_shares = st.builds(
    lambda event, files: (
        {**event, "channel": "C0CUSTOMERS", "user": "U0CUSTOMER", "subtype": "file_share"} | {"files": files}
    ),
    slack_message,
    st.lists(plausible_or_anything(slack_file), max_size=3),
)
