"""The WeCom server API (企业微信 服务端API) as intake and the notifier call it: the kf (微信客服) methods
and media downloads, with the access token cached in Redis.

Every answer is JSON `{"errcode": 0, "errmsg": "ok", ...}`; a non-zero errcode raises `WecomApiError`.
The access token (https://developer.work.weixin.qq.com/document/path/91039) is fetched with
`gettoken?corpid&corpsecret`, kept in Redis for its `expires_in` less a margin (shared by every
process and instance, as WeCom asks: fetching it often is rate limited), and fetched again when an
answer says it is invalid (40014) or expired (42001).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import httpx
from redis.asyncio import Redis

from shared.settings import Settings

logger = logging.getLogger(__name__)

# errcodes saying the access token is no good (any more): fetch a new one and call again.
TOKEN_REFUSED = frozenset({40014, 42001})
# A token is dropped this long before WeCom says it expires, so that no call carries a dying one.
TOKEN_MARGIN_SECONDS = 300
TIMEOUT_SECONDS = 10.0
_FILENAME = re.compile(r'filename\*?=(?:UTF-8\'\')?"?([^";]+)"?', re.IGNORECASE)


def access_token_key(corp_id: str) -> str:
    """A cache (not state): lost, the next call fetches a new token."""
    return f"sb:wecom:access-token:{corp_id}"


class WecomApiError(Exception):
    """WeCom answered with a non-zero errcode (or not in its JSON shape)."""

    def __init__(self, method: str, errcode: int, errmsg: str):
        super().__init__(f"{method}: errcode {errcode}: {errmsg}")
        self.method = method
        self.errcode = errcode
        self.errmsg = errmsg


class MediaTooLarge(Exception):
    """A media file larger than the caller allows; nothing of it is kept."""


@dataclass(frozen=True)
class Media:
    content: bytes
    content_type: str
    filename: str | None


class WecomApi:
    """Calls on behalf of one corp (SWITCHBOARD_WECOM_CORP_ID / _SECRET) at SWITCHBOARD_WECOM_API_URL."""

    def __init__(self, settings: Settings, redis: Redis):
        assert settings.wecom_corp_id and settings.wecom_secret, "WeCom is configured"
        self.corp_id = settings.wecom_corp_id
        self._secret = settings.wecom_secret.get_secret_value()
        self.redis = redis
        self.http = httpx.AsyncClient(base_url=settings.wecom_api_url, timeout=TIMEOUT_SECONDS)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def access_token(self, *, refresh: bool = False) -> str:
        key = access_token_key(self.corp_id)
        if not refresh and (cached := await self.redis.get(key)) is not None:
            return cached
        response = await self.http.get("gettoken", params={"corpid": self.corp_id, "corpsecret": self._secret})
        answer = _answer("gettoken", response)
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise WecomApiError("gettoken", -1, "no access_token in the answer")
        expires_in = int(answer.get("expires_in") or 7200)
        await self.redis.set(key, token, ex=max(60, expires_in - TOKEN_MARGIN_SECONDS))
        return token

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """POSTs `body` as JSON to `method` ("kf/sync_msg"); returns the answer. Raises WecomApiError,
        httpx.HTTPError on the network."""
        try:
            return await self._post(method, body, await self.access_token())
        except WecomApiError as error:
            if error.errcode not in TOKEN_REFUSED:
                raise
            logger.info("WeCom access token refused; fetching a new one", extra={"errcode": error.errcode})
        return await self._post(method, body, await self.access_token(refresh=True))

    async def media(self, media_id: str, max_bytes: int) -> Media:
        """Downloads a temporary media file (`media/get`). Raises MediaTooLarge beyond `max_bytes`
        (read no further), WecomApiError when WeCom answers with an error instead of the file."""
        try:
            return await self._download(media_id, max_bytes, await self.access_token())
        except WecomApiError as error:
            if error.errcode not in TOKEN_REFUSED:
                raise
        return await self._download(media_id, max_bytes, await self.access_token(refresh=True))

    async def _post(self, method: str, body: dict[str, Any], token: str) -> dict[str, Any]:
        return _answer(method, await self.http.post(method, params={"access_token": token}, json=body))

    async def _download(self, media_id: str, max_bytes: int, token: str) -> Media:
        params = {"access_token": token, "media_id": media_id}
        async with self.http.stream("GET", "media/get", params=params) as response:
            content_type = response.headers.get("content-type", "application/octet-stream").split(";")[0]
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise MediaTooLarge(f"{declared} bytes; the limit is {max_bytes}")
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise MediaTooLarge(f"more than {max_bytes} bytes")
                chunks.append(chunk)
        content = b"".join(chunks)
        if content_type.strip().lower() in ("application/json", "text/plain") and content.startswith(b"{"):
            # WeCom answers an error in JSON where the file would be.
            _answer("media/get", httpx.Response(response.status_code, content=content))
        found = _FILENAME.search(response.headers.get("content-disposition", ""))
        return Media(content, content_type.strip().lower(), found.group(1) if found else None)


def _answer(method: str, response: httpx.Response) -> dict[str, Any]:
    try:
        answer = response.json()
    except ValueError:
        raise WecomApiError(method, -1, f"HTTP {response.status_code}, not JSON") from None
    if not isinstance(answer, dict):
        raise WecomApiError(method, -1, "the answer is not a JSON object")
    errcode = answer.get("errcode", 0)
    if errcode != 0:
        raise WecomApiError(method, int(errcode) if isinstance(errcode, int) else -1, str(answer.get("errmsg", "")))
    return answer
