"""A fake captcha siteverify endpoint (Cloudflare Turnstile's and hCaptcha's shape): a POST of `secret`
and `response`, answered `{"success": bool, "error-codes": [...]}`. A token passes when it is `PASSING_TOKEN`
and the secret is the one the fake was given. Each verification records the client's port, which names the
TCP connection it came on."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.http_server import ThreadedHttpServer

PASSING_TOKEN = "XXXX.DUMMY.TOKEN.XXXX"


@dataclass(frozen=True)
class Verification:
    secret: str
    response: str
    remoteip: str | None
    client_port: int


class FakeSiteverify:
    def __init__(self, secret: str):
        self.secret = secret
        self.verifications: list[Verification] = []
        self._server = ThreadedHttpServer("fake-siteverify", [Route("/siteverify", self._verify, methods=["POST"])])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}/siteverify"

    @property
    def open_connections(self) -> int:
        return self._server.open_connections

    def __enter__(self) -> FakeSiteverify:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    async def _verify(self, request: Request) -> JSONResponse:
        form = await request.form()
        check = Verification(
            str(form.get("secret")), str(form.get("response")), form.get("remoteip"), request.client.port
        )
        self.verifications.append(check)
        if check.secret != self.secret:
            return JSONResponse({"success": False, "error-codes": ["invalid-input-secret"]})
        if check.response != PASSING_TOKEN:
            return JSONResponse({"success": False, "error-codes": ["invalid-input-response"]})
        return JSONResponse({"success": True, "error-codes": []})
