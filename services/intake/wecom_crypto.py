"""WeCom callback cryptography (企业微信 回调 加解密): signatures, AES and the callback's XML. Pure.

The scheme (https://developer.work.weixin.qq.com/document/path/90968, the WXBizMsgCrypt samples):
- `msg_signature` = hex SHA-1 of the sorted, concatenated token, timestamp, nonce and ciphertext;
- the ciphertext is base64 of AES-256-CBC with key = base64-decode(EncodingAESKey + "="), IV = the
  key's first 16 bytes, PKCS#7 padded to a multiple of 32 bytes;
- the plaintext is 16 random bytes, the message's length (4 bytes, network order), the message
  (UTF-8), and the receiver ID (the corp ID), which must be ours.

XML is read with defusedxml: DTDs (and so entity expansion, external entities) are refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

# WeCom pads to 32 bytes (not AES's 16): the samples' PKCS7Encoder block size.
PAD_BLOCK = 32
# A callback older (or newer) than this is refused: a replayed capture cannot make us act. WeCom's
# callback Token lives 10 minutes, so a genuine callback is never older than that to any use.
MAX_CLOCK_SKEW_SECONDS = 600
ENCODING_AES_KEY_LENGTH = 43
# The callback's XML is a few hundred bytes; its Encrypt element carries at most an event.
MAX_XML_BYTES = 64 * 1024


class CallbackRefused(Exception):
    """A callback that is not WeCom's, or not for us: a wrong signature, key or corp ID, a stale
    timestamp, or a body that is not the callback's XML. The message says which, for the log."""


@dataclass(frozen=True)
class WecomCrypto:
    """The callback's secrets: `token` and `encoding_aes_key` as set in WeCom admin, `receive_id` the corp ID."""

    token: str
    encoding_aes_key: str
    receive_id: str

    key: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """Raises ValueError for a key that is not 43 base64 characters of 32 bytes (at start-up, not per call)."""
        if len(self.encoding_aes_key) != ENCODING_AES_KEY_LENGTH:
            raise ValueError(f"an EncodingAESKey has {ENCODING_AES_KEY_LENGTH} characters")
        try:
            key = base64.b64decode(self.encoding_aes_key + "=", validate=True)
        except binascii.Error as error:
            raise ValueError("the EncodingAESKey is not base64") from error
        if len(key) != 32:
            raise ValueError("the EncodingAESKey does not decode to 32 bytes")
        object.__setattr__(self, "key", key)

    def signature(self, timestamp: str, nonce: str, ciphertext: str) -> str:
        return signature(self.token, timestamp, nonce, ciphertext)

    def open(self, msg_signature: str, timestamp: str, nonce: str, ciphertext: str, *, now: float) -> str:
        """The plaintext of a signed ciphertext (an `echostr` or an `Encrypt` element), checked.

        Raises CallbackRefused on a stale or malformed timestamp, a wrong signature, a ciphertext this key
        did not make, or another receiver's corp ID. `now`: Unix seconds.
        """
        check_timestamp(timestamp, now)
        # As bytes: compare_digest refuses str with non-ASCII characters, and a query may carry any.
        expected = self.signature(timestamp, nonce, ciphertext).encode()
        if not hmac.compare_digest(expected, msg_signature.lower().encode()):
            raise CallbackRefused("wrong msg_signature")
        return self.decrypt(ciphertext)

    def decrypt(self, ciphertext: str) -> str:
        try:
            raw = base64.b64decode(ciphertext, validate=True)
        except (binascii.Error, ValueError) as error:
            raise CallbackRefused("the ciphertext is not base64") from error
        if not raw or len(raw) % 16:
            raise CallbackRefused("the ciphertext is not whole AES blocks")
        key = self.key
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        pad = padded[-1]
        if not 1 <= pad <= PAD_BLOCK or padded[-pad:] != bytes([pad]) * pad:
            raise CallbackRefused("bad padding: the ciphertext was not made with this EncodingAESKey")
        plain = padded[:-pad]
        if len(plain) < 20:
            raise CallbackRefused("the plaintext is too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CallbackRefused("the plaintext's length is wrong: not made with this EncodingAESKey")
        message, receive_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise CallbackRefused("the callback is for another corp ID")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as error:
            raise CallbackRefused("the plaintext is not UTF-8") from error

    def encrypt(self, message: str, random16: bytes | None = None) -> str:
        """The ciphertext WeCom would send for `message` (what the fake WeCom and tests sign)."""
        random16 = os.urandom(16) if random16 is None else random16
        if len(random16) != 16:
            raise ValueError("the random prefix has 16 bytes")
        body = message.encode()
        plain = random16 + struct.pack(">I", len(body)) + body + self.receive_id.encode()
        pad = PAD_BLOCK - len(plain) % PAD_BLOCK
        key = self.key
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()).decode()


def signature(token: str, timestamp: str, nonce: str, ciphertext: str) -> str:
    """The hex SHA-1 of the four strings sorted and concatenated (WeCom's `msg_signature`)."""
    return hashlib.sha1("".join(sorted((token, timestamp, nonce, ciphertext))).encode()).hexdigest()


def check_timestamp(timestamp: str, now: float) -> None:
    """Raises CallbackRefused unless `timestamp` (Unix seconds, decimal) is within MAX_CLOCK_SKEW_SECONDS of `now`."""
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise CallbackRefused("malformed timestamp")
    if abs(now - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise CallbackRefused("stale timestamp")


def xml_fields(document: bytes | str) -> dict[str, str]:
    """The text of each child element of an XML document's root (WeCom's flat `<xml>` shape).

    Raises CallbackRefused for a body over MAX_XML_BYTES, malformed XML, or any DTD (entity
    expansion, external entities); never anything else.
    """
    size = len(document.encode() if isinstance(document, str) else document)
    if size > MAX_XML_BYTES:
        raise CallbackRefused(f"the XML is larger than {MAX_XML_BYTES} bytes")
    try:
        root: Element = fromstring(document, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise CallbackRefused(f"XML refused: {type(error).__name__}") from None
    except (ParseError, ValueError) as error:
        raise CallbackRefused(f"malformed XML: {error}") from None
    return {child.tag: (child.text or "").strip() for child in root if isinstance(child.tag, str)}
