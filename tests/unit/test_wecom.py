"""WeCom (WeChat Customer Service): the callback crypto against WeCom's published example vectors, the XML
reader, what a fetched message means, and the reply window."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.wecom_content import (
    CustomerMessage,
    Greeting,
    Ignored,
    KfCallback,
    kf_callback,
    normalise,
)
from services.intake.wecom_crypto import MAX_CLOCK_SKEW_SECONDS, CallbackRefused, WecomCrypto, xml_fields
from services.notifier.wecom import split_for_wecom
from shared.events import Sender
from shared.identities import identities_of
from shared.wecom_window import MAX_MESSAGES, WINDOW_SECONDS, refusal

# --- Published example vectors ------------------------------------------------------------------------
# 1. The official WeCom callback sample (Tencent's WXBizMsgCrypt "Sample.cs"/"Sample.py" of the 企业微信
#    加解密库, https://developer.work.weixin.qq.com/document/path/90307): token "QDG6eK", the verification
#    GET of its comment and the encrypted text message it decrypts.
OFFICIAL = WecomCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
OFFICIAL_ECHOSTR = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
OFFICIAL_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJ"
    "Ts3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2"
    "hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4"
    "EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXd"
    "Q2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
# 2. sbzhu/weworkapi_python, callback/Sample.py (commit 27220fbe9d5251d46101e33751568eae9f413666): the same
#    sample with a corp's "ww…" ID.
SBZHU = WecomCrypto(
    "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo", "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt", "ww1436e0e65a779aee"
)
SBZHU_BODY = (
    "<xml><ToUserName><![CDATA[ww1436e0e65a779aee]]></ToUserName>\n<Encrypt><![CDATA[Kl7kjoSf6DMD1zh7rtrHjFaDapS"
    "CkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8"
    "SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6"
    "EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwa"
    "WbvL6aSDPOYuPDGOCI8jmnKiypE+]]></Encrypt>\n<AgentID><![CDATA[1000002]]></AgentID>\n</xml>"
)


def test_the_official_sample_url_verification_decrypts_its_echostr():
    sig, timestamp, nonce = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780"
    assert OFFICIAL.signature(timestamp, nonce, OFFICIAL_ECHOSTR) == sig
    assert OFFICIAL.open(sig, timestamp, nonce, OFFICIAL_ECHOSTR, now=1409659589) == "1616140317555161061"


def test_the_official_sample_message_decrypts_to_its_xml():
    sig, timestamp, nonce = "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", "1372623149"
    plain = OFFICIAL.open(sig, timestamp, nonce, OFFICIAL_ENCRYPT, now=1409659813)
    fields = xml_fields(plain)
    assert fields["Content"] == "hello" and fields["MsgId"] == "4561255354251345929"
    assert fields["ToUserName"] == "wx5823bf96d3bd56c7"


def test_the_sbzhu_sample_verification_and_message():
    echostr = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="
    assert SBZHU.open("012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb", "1476416373", "47744683", echostr, now=1476416373)
    encrypted = xml_fields(SBZHU_BODY)["Encrypt"]
    signature = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
    plain = SBZHU.open(signature, "1476422779", "1597212914", encrypted, now=1476422779)
    assert xml_fields(plain)["Content"] == "你好"


@pytest.mark.parametrize(
    ("crypto", "signature", "timestamp", "now", "reason"),
    [
        (OFFICIAL, "0" * 40, "1409659813", 1409659813, "wrong msg_signature"),
        (OFFICIAL, "é" * 40, "1409659813", 1409659813, "wrong msg_signature"),
        (OFFICIAL, "477715d11cdb4164915debcba66cb864d751f3e6", "1409659813", 1409659813 + 3600, "stale timestamp"),
        (OFFICIAL, "477715d11cdb4164915debcba66cb864d751f3e6", "14096x9813", 1409659813, "malformed timestamp"),
        (
            WecomCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwSomeoneElse"),
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            1409659813,
            "another corp ID",
        ),
    ],
    ids=["forged", "non-ascii", "stale", "malformed-timestamp", "corp-id"],
)
def test_the_official_message_is_refused_when_anything_is_off(crypto, signature, timestamp, now, reason):
    with pytest.raises(CallbackRefused, match=reason):
        crypto.open(signature, timestamp, "1372623149", OFFICIAL_ENCRYPT, now=now)


def test_a_wrong_key_never_yields_a_plaintext():
    other = WecomCrypto("QDG6eK", "B" * 43, "wx5823bf96d3bd56c7")
    with pytest.raises(CallbackRefused):
        other.decrypt(OFFICIAL_ENCRYPT)


@pytest.mark.parametrize("key", ["short", "!" * 43], ids=["length", "not-base64"])
def test_a_malformed_encoding_aes_key_fails_at_start_up(key):
    with pytest.raises(ValueError):
        WecomCrypto("t", key, "ww1")


_keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", min_size=42, max_size=42)


@given(
    key=_keys.map(lambda prefix: prefix + "A"),
    message=st.text(max_size=3000),
    corp_id=st.from_regex(r"\Aww[0-9a-f]{16}\Z"),
    random16=st.binary(min_size=16, max_size=16),
)
def test_encrypting_then_decrypting_gives_the_message_back(key, message, corp_id, random16):
    crypto = WecomCrypto("token", key, corp_id)
    ciphertext = crypto.encrypt(message, random16)
    assert crypto.decrypt(ciphertext) == message
    signature = crypto.signature("1700000000", "42", ciphertext)
    assert crypto.open(signature, "1700000000", "42", ciphertext, now=1700000000 + MAX_CLOCK_SKEW_SECONDS) == message


@given(garbage=st.text(max_size=400))
def test_any_ciphertext_is_decrypted_or_refused_never_crashes(garbage):
    try:
        OFFICIAL.decrypt(garbage)
    except CallbackRefused:
        pass


@given(body=st.binary(max_size=2000))
def test_any_body_is_read_or_refused_never_crashes(body):
    try:
        xml_fields(body)
    except CallbackRefused:
        pass


def test_xml_with_a_dtd_is_refused():
    billion_laughs = b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><Encrypt>&b;</Encrypt></xml>'
    with pytest.raises(CallbackRefused, match="XML refused"):
        xml_fields(billion_laughs)
    external = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'
    with pytest.raises(CallbackRefused):
        xml_fields(external)


# --- The callback and the fetched messages --------------------------------------------------------------


def test_a_kf_callback_names_the_account_and_its_token():
    fields = {
        "ToUserName": "ww1",
        "MsgType": "event",
        "Event": "kf_msg_or_event",
        "Token": "ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR",
        "OpenKfId": "wkxxxxxxx",
    }
    assert kf_callback(fields, "ww1") == KfCallback("wkxxxxxxx", fields["Token"])
    assert kf_callback({**fields, "Event": "change_contact"}, "ww1") is None
    with pytest.raises(CallbackRefused):
        kf_callback(fields, "ww2")
    with pytest.raises(CallbackRefused):
        kf_callback({**fields, "Token": ""}, "ww1")


def _item(msgtype: str, content: object, **fields: object) -> dict:
    return {
        "msgid": "from_msgid_4622416642169452483",
        "open_kfid": "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q",
        "external_userid": "wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw",
        "send_time": 1615478585,
        "origin": 3,
        "msgtype": msgtype,
        msgtype: content,
        **fields,
    }


@pytest.mark.parametrize(
    ("msgtype", "content", "text", "media"),
    [
        ("text", {"content": "你好，我的订单"}, "你好，我的订单", ()),
        ("image", {"media_id": "IMG"}, "[image]", (("IMG", "image/jpeg"),)),
        ("voice", {"media_id": "VOI"}, "[voice message]", (("VOI", "audio/amr"),)),
        ("file", {"media_id": "FIL"}, "[file]", (("FIL", "application/octet-stream"),)),
        (
            "location",
            {"latitude": 23.1, "longitude": 113.3, "name": "广州塔", "address": "广州"},
            "[location: 广州塔, 广州 (23.1, 113.3)]",
            (),
        ),
        ("link", {"title": "T", "desc": "", "url": "https://e.x/"}, "[link: T]\nhttps://e.x/", ()),
        ("miniprogram", {"title": "shop"}, "[miniprogram message: open WeChat Customer Service to see it]", ()),
    ],
)
def test_customer_messages_are_normalised(msgtype, content, text, media):
    message = normalise(_item(msgtype, content))
    assert isinstance(message, CustomerMessage)
    assert message.text == text
    assert tuple((item.media_id, item.content_type) for item in message.media) == media
    assert message.address == "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q:wmAJ2GCAAAme1XQRC-NI-q0_ZM9ukoAw"
    assert message.sent_at.timestamp() == 1615478585


def test_enter_session_is_a_greeting_and_other_origins_are_ignored():
    event = {"event_type": "enter_session", "external_userid": "wmA", "welcome_code": "CODE", "open_kfid": "wkA"}
    greeting = normalise(_item("event", event, origin=4, external_userid=""))
    assert greeting == Greeting("from_msgid_4622416642169452483", "wkA", "wmA", "CODE")
    assert isinstance(normalise(_item("event", {**event, "event_type": "msg_send_fail"}, origin=4)), Ignored)
    servicer = normalise(_item("text", {"content": "hi"}, origin=5))
    assert isinstance(servicer, Ignored) and not servicer.malformed


@given(item=st.one_of(st.none(), st.integers(), st.dictionaries(st.text(max_size=10), st.text(max_size=10))))
def test_any_item_is_normalised_or_ignored_never_raises(item):
    assert isinstance(normalise(item), CustomerMessage | Greeting | Ignored)


def test_the_external_userid_is_a_verified_wecom_identity():
    assert identities_of(Sender(wecom_external_userid="wmA")) == ["wecom:wmA"]


# --- The reply window -----------------------------------------------------------------------------------


def test_the_reply_window_is_48_hours_and_5_messages_after_the_customer_wrote():
    wrote = 1_700_000_000.0
    assert refusal(wrote, 0, wrote + 60) is None
    assert refusal(wrote, MAX_MESSAGES - 1, wrote + WINDOW_SECONDS) is None
    assert "48-hour" in refusal(wrote, 0, wrote + WINDOW_SECONDS + 1)
    assert "5 messages" in refusal(wrote, MAX_MESSAGES, wrote + 60)
    assert refusal(None, 0, wrote) is not None


@given(text=st.text(max_size=6000), limit=st.integers(min_value=4, max_value=300))
def test_split_for_wecom_keeps_each_part_within_the_byte_limit(text, limit):
    parts = split_for_wecom(text, limit)
    if text.strip():
        assert all(len(part.encode()) <= limit for part in parts)
        # Only line breaks where it was cut and blank stretches are left out.
        assert "".join("".join(parts).split()) == "".join(text.split())
