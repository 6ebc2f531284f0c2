"""A lean fake of the Slack Web API for the bench: answers at once, remembers when each ticket was announced.

Methods (https://api.slack.com/methods) answered with `ok`: chat.postMessage and chat.update (with a
fresh `ts`), auth.test, users.info, conversations.open; any other method gets a bare `{"ok": true}`.
Bodies may be JSON or form-encoded; the bench only looks for ticket IDs in them, so it works whatever
the notifier's text is.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import Counter

from aiohttp import web

from shared.ids import TICKET_ID_PATTERN

_TICKET_ID = re.compile(TICKET_ID_PATTERN.strip("^$").join((r"\b", r"\b")))
_POSTING_METHODS = ("chat.postMessage", "chat.update")


class FakeSlack:
    """Run with `async with FakeSlack() as slack:`; point SWITCHBOARD_SLACK_API_URL at `slack.base_url`."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        # Ticket ID → time.time() at which the first chat.postMessage naming it arrived.
        self.announced_at: dict[str, float] = {}
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    @property
    def posts(self) -> int:
        return self.calls["chat.postMessage"]

    async def __aenter__(self) -> FakeSlack:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._answer)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/api/"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.Response:
        arrived = time.time()
        method = request.match_info["method"]
        self.calls[method] += 1
        if method == "chat.postMessage":
            body = await request.text()
            for ticket_id in _TICKET_ID.findall(body):
                self.announced_at.setdefault(ticket_id, arrived)
        return web.json_response(self._reply(method, request))

    def _reply(self, method: str, request: web.Request) -> dict:
        if method in _POSTING_METHODS:
            ts = f"{int(time.time())}.{next(self._ts):06d}"
            return {"ok": True, "channel": request.query.get("channel", "C0BENCH"), "ts": ts, "message": {"ts": ts}}
        if method == "auth.test":
            return {"ok": True, "url": "https://bench.slack.com/", "team": "Bench", "user": "switchboard",
                    "team_id": "T0BENCH", "user_id": "U0BOT", "bot_id": "B0BOT"}  # fmt: skip
        if method == "conversations.open":
            # The bot's DM with a user (the notifier updates the ticket cards it sent there).
            user_id = request.query.get("users", "U0BENCH")
            return {"ok": True, "channel": {"id": f"D{user_id[1:]}"}}
        if method == "users.info":
            user_id = request.query.get("user", "U0BENCH")
            profile = {"real_name": user_id, "email": f"{user_id.lower()}@example.com"}
            return {"ok": True, "user": {"id": user_id, "name": user_id.lower(), "is_bot": False, "profile": profile}}
        return {"ok": True}
