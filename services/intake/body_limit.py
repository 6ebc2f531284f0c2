"""Request bodies bounded at the HTTP layer: past its endpoint's limit a body gets 413, whoever reads it.

An ASGI middleware, so that every endpoint is covered the same way, bodies read by libraries (Bolt,
the multipart parser) and bodies without a Content-Length (chunked) included: a declared length over
the limit is refused before the endpoint runs, and the bytes actually received are counted as they
arrive: at the limit the 413 goes out and the app is told the client went away, so reading stops
there (RFC 9110 §15.5.14, 413 Content Too Large). The 413's message is in the reader's language
(`texts_for`); its `type` stays "too_large".
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import i18n

logger = logging.getLogger(__name__)


def header(scope: Scope, name: bytes) -> str | None:
    """A request header of an ASGI scope (Latin-1, as Starlette reads them), or None."""
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


class BodyLimit:
    """`limit_for(scope)` gives the limit in bytes of each request; `on_refused(scope)` counts refusals;
    `texts_for(scope)` the language of the 413 (default English)."""

    def __init__(
        self,
        app: ASGIApp,
        limit_for: Callable[[Scope], int],
        on_refused: Callable[[Scope], None] = lambda scope: None,
        texts_for: Callable[[Scope], i18n.Texts] = lambda scope: i18n.texts(None),
    ) -> None:
        self.app = app
        self.limit_for = limit_for
        self.on_refused = on_refused
        self.texts_for = texts_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = (header(scope, b"content-length") or "").strip()
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return

        received = 0
        response_started = refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    if not response_started:
                        await self._refuse(scope, receive, send, limit)
                    # What every ASGI app handles: it stops reading and answering.
                    return {"type": "http.disconnect"}
            return message

        async def watched_send(message: Message) -> None:
            nonlocal response_started
            if refused:
                # The 413 went out (or the answer was under way and is cut short): nothing more to send.
                return
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, watched_send)
        except Exception:
            if not refused:
                raise
            # Whatever the app made of the disconnect (ClientDisconnect ...), the request was answered.
            logger.debug("request stopped at its body limit", exc_info=True)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        self.on_refused(scope)
        message = self.texts_for(scope)("refusal.body.too_large", limit=str(limit))
        response = JSONResponse(
            status_code=413,
            content={"detail": [{"field": "(body)", "message": message, "type": "too_large"}]},
            # The rest of the body is never read: the connection cannot carry another request.
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)
