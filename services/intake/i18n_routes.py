"""`GET /v1/i18n`: the customer page's texts in the reader's language (the page has no build step, so it
fetches them).

The language (`shared/i18n.py` `reader_locale`): `?lang=` (the page's language switch) when it has a
catalogue, else the browser's Accept-Language, else the desk's default. The answer: `{"locale", "languages":
[{"locale", "name"}], "messages": {id: text | {CLDR plural category: text}}}`; plural texts are picked in the
browser with Intl.PluralRules, `{name}` placeholders filled in there.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from shared import i18n
from shared.config import DeskConfig

I18N_PATH = "/v1/i18n"


def i18n_routes(config: DeskConfig) -> APIRouter:
    router = APIRouter()

    @router.get(I18N_PATH)
    async def page_texts(request: Request, lang: Annotated[str | None, Query(max_length=64)] = None) -> Any:
        locale = i18n.reader_locale(
            picked=lang, accept_language=request.headers.get("accept-language"), desk_locale=config.desk_locale
        )
        texts = i18n.texts(locale)
        body = {
            "locale": texts.locale,
            "languages": [{"locale": offered, "name": i18n.texts(offered).name} for offered in i18n.available()],
            "messages": i18n.messages(texts.locale),
        }
        # Shared caches keep one answer per browser language.
        return JSONResponse(body, headers={"Vary": "Accept-Language", "Cache-Control": "no-cache"})

    return router
