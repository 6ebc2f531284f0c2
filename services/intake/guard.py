"""The public endpoints' defences at work in intake-http: client addresses, rate limits, the form's
spam checks, and their metrics (issue #16).

Decisions are made in services.intake.limits and services.intake.spam; this reads the request, asks
Redis (one script per request, services.intake.limiter) and the captcha provider, and counts.
Authenticated webhooks (Slack, Telegram: signed) never come here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

import aiohttp
from prometheus_client import CollectorRegistry, Counter
from starlette.datastructures import Headers

from services.intake.limiter import RateLimiter, Verdict
from services.intake.limits import Address, Endpoint, checks_for, client_address, networks, retry_after_seconds
from services.intake.spam import FormStamps, GuardFields, Missing, Suspect, judge
from shared import i18n
from shared.config import DeskConfig
from shared.csat import csat_secret
from shared.settings import Settings

logger = logging.getLogger(__name__)


class CaptchaUnavailable(RuntimeError):
    """The captcha provider did not answer (in time, or at all): the post is neither let through nor kept."""


@dataclass(frozen=True)
class Limited:
    """A request over a limit: how long to wait (the Retry-After header) and which limit it met."""

    retry_after: int
    scope: str

    def message(self, texts: i18n.Texts) -> str:
        """What the client is told, in the reader's language (catalogue `refusal.rate_limited`)."""
        return texts("refusal.rate_limited", seconds=self.retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class PublicGuard:
    def __init__(self, redis, config: DeskConfig, settings: Settings, registry: CollectorRegistry):
        self.config = config
        self.settings = settings
        self.limiter = RateLimiter(redis)
        self.stamps = FormStamps(csat_secret(settings))
        self.counter = Counter(
            "switchboard_intake_guarded_total",
            "Public requests stopped by the defences, by endpoint and outcome: limited (429), refused "
            "(a field the page always sends was missing), quarantined (judged spam, answered like a person)",
            ["endpoint", "outcome"],
            registry=registry,
        )
        self._trusted = networks(tuple(config.limits.trusted_proxies))
        self._siteverify_session: aiohttp.ClientSession | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The app's lifetime (a `while_running`): with `spam.captcha` configured, one HTTP client for
        siteverify, so that a burst of form posts reuses its connections rather than opening (TCP, TLS)
        one per post; closed when the app stops."""
        if self.config.spam.captcha is None:
            yield
            return
        async with aiohttp.ClientSession() as session:
            self._siteverify_session = session
            try:
                yield
            finally:
                self._siteverify_session = None

    def client(self, peer: str | None, headers: Headers) -> Address | None:
        """The request's client: the peer, or what a trusted proxy says in X-Forwarded-For."""
        return client_address(peer, headers.getlist("x-forwarded-for"), self._trusted)

    async def limit(
        self,
        endpoint: Endpoint,
        client: Address | None,
        *,
        identities: Sequence[str] = (),
        form_id: str | None = None,
    ) -> Limited | None:
        """Takes one request from each of the endpoint's counters; a `Limited` (counted) when one is full.
        Raises RedisError."""
        checks = checks_for(endpoint, self.config.limits, client, identities=identities, form_id=form_id)
        verdict: Verdict = await self.limiter.take(checks)
        if verdict.allowed:
            return None
        self.count(endpoint, "limited")
        logger.debug("rate limited", extra={"endpoint": endpoint, "limit": verdict.scope, "wait_ms": verdict.wait_ms})
        return Limited(retry_after_seconds(verdict.wait_ms), verdict.scope or "")

    def count(self, endpoint: str, outcome: str) -> None:
        self.counter.labels(endpoint, outcome).inc()

    async def judge_form(
        self, form_id: str, guard: GuardFields, client: Address | None, now: datetime
    ) -> Suspect | Missing | None:
        """The spam verdict on a form post (services.intake.spam.judge), the captcha verified with the
        provider when one is configured and a token was sent. Raises CaptchaUnavailable."""
        spam = self.config.spam
        stamp_age = self.stamps.age_seconds(guard.stamp, form_id, now) if guard.stamp is not None else None
        captcha_passed = None
        if spam.captcha is not None and guard.captcha and not (spam.honeypot and guard.honeypot):
            captcha_passed = await self._siteverify(guard.captcha, client)
        verdict = judge(guard, stamp_age, captcha_passed, spam)
        if isinstance(verdict, Missing):
            self.count("form", "refused")
        elif isinstance(verdict, Suspect):
            self.count("form", "quarantined")
        return verdict

    async def _siteverify(self, token: str, client: Address | None) -> bool:
        """The provider's verdict on a widget's token: a POST of secret + response (+ remoteip) to its
        siteverify URL, answered `{"success": bool, ...}` (Cloudflare Turnstile and hCaptcha alike).
        Only while `running()`."""
        captcha = self.config.spam.captcha
        session = self._siteverify_session
        assert captcha is not None
        if session is None:
            # Outside `running()` (an app served without its lifespan): a 503, as for a provider that is down.
            raise CaptchaUnavailable("the siteverify client is not running")
        secret = self.settings.captcha_secret
        if secret is None:
            raise CaptchaUnavailable("spam.captcha is configured but SWITCHBOARD_CAPTCHA_SECRET is not set")
        form = {"secret": secret.get_secret_value(), "response": token}
        if client is not None:
            form["remoteip"] = str(client)
        timeout = aiohttp.ClientTimeout(total=captcha.timeout.total_seconds())
        try:
            async with session.post(captcha.siteverify_url(), data=form, timeout=timeout) as response:
                if response.status != 200:
                    raise CaptchaUnavailable(f"siteverify answered HTTP {response.status}")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            raise CaptchaUnavailable(f"siteverify failed: {error!r}") from error
        if not isinstance(answer, dict):
            raise CaptchaUnavailable("siteverify answered no JSON object")
        if answer.get("success") is not True:
            logger.info("captcha not passed", extra={"error_codes": _codes(answer.get("error-codes"))})
            return False
        return True


def _codes(value: object) -> list[str]:
    return [str(code) for code in value][:10] if isinstance(value, Iterable) and not isinstance(value, str) else []
