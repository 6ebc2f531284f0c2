"""The config of the public endpoints' defences (issue #16): rate limits (`limits:`) and spam checks (`spam:`).

Part of `DeskConfig` (shared/config.py); what the numbers mean is decided in services/intake/limits.py
(rate limits, client addresses) and services/intake/spam.py (honeypot, fill time, captcha).
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from shared.durations import Duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _network(text: str) -> str:
    # strict=False: "10.0.0.1/8" is read as 10.0.0.0/8, as an operator means it.
    return str(ipaddress.ip_network(text.strip(), strict=False))


# An IPv4 or IPv6 network in CIDR notation ("10.0.0.0/8", "2001:db8::/32"); a bare address is a /32 or /128.
Cidr = Annotated[str, AfterValidator(_network)]


class Rate(_Strict):
    """At most `requests` at once, then one more every `per / requests` (GCRA: a bucket of `requests`
    refilled over `per`)."""

    requests: int = Field(ge=1)
    per: Duration = Field(gt=timedelta(0))


class EndpointLimits(_Strict):
    """The limits of one public endpoint; an absent one does not limit. A request must be within all of them."""

    # Per client address, and per network around it (`limits.ipv4_prefix` / `limits.ipv6_prefix`).
    ip: Rate | None = None
    network: Rate | None = None
    # Per contact the request names (the email or phone typed in: the form, a chat's hello).
    contact: Rate | None = None
    # Per form (the form endpoint only): all senders together.
    form: Rate | None = None


class Limits(_Strict):
    """Rate limits of the public endpoints, kept in Redis so every intake-http instance shares them."""

    # Proxies whose X-Forwarded-For is believed: the client is the rightmost address in it that is not
    # one of them. None listed: the TCP peer is the client and the header is ignored.
    trusted_proxies: list[Cidr] = []
    # Clients never limited (after X-Forwarded-For is read): monitoring, `switchboard bench` on this machine.
    exempt: list[Cidr] = []
    # The network a client's address is counted in for `network` limits.
    ipv4_prefix: int = Field(default=24, ge=8, le=32)
    ipv6_prefix: int = Field(default=64, ge=16, le=128)
    # POST /v1/forms/{id}.
    form: EndpointLimits = EndpointLimits()
    # New web-chat sessions (a hello without a session token); messages in a session have their own limit.
    chat: EndpointLimits = EndpointLimits()
    # POST /v1/csat/{token} (the rating page).
    csat: EndpointLimits = EndpointLimits()
    # The help centre's searches (GET /v1/kb/search, GET /kb?q=) and its "this solved it" posts.
    kb: EndpointLimits = EndpointLimits()


class Captcha(_Strict):
    """Server-side captcha verification of form posts (the secret: SWITCHBOARD_CAPTCHA_SECRET)."""

    provider: Literal["turnstile", "hcaptcha"]
    # The public key the page's widget is rendered with.
    site_key: str = Field(min_length=1)
    # The provider's siteverify endpoint (a POST of secret + response token); default: the provider's own.
    verify_url: str | None = None
    # How long a siteverify call may take; past it, the post is answered 503 (try again), never let through.
    timeout: Duration = Field(default=timedelta(seconds=5), gt=timedelta(0))

    def siteverify_url(self) -> str:
        if self.verify_url is not None:
            return self.verify_url
        if self.provider == "turnstile":
            return "https://challenges.cloudflare.com/turnstile/v0/siteverify"
        return "https://api.hcaptcha.com/siteverify"


class Spam(_Strict):
    """How the form tells a bot from a person; what looks like a bot goes to the quarantine (never dropped)."""

    # The page's hidden field (`website`) a person never sees: filled in, the post is spam.
    honeypot: bool = True
    # The page's signed render time (`form_stamp`): a post sooner than this after the page was rendered is
    # spam; one with a forged or expired stamp too. `0s`: no minimum.
    min_fill_time: Duration = Field(default=timedelta(seconds=3), ge=timedelta(0))
    # A stamp older than this is expired (the page is reloaded to get a new one).
    stamp_max_age: Duration = Field(default=timedelta(days=1), gt=timedelta(0))
    # optional: posts without a stamp (API clients) are let through; required: they are refused (422).
    stamp: Literal["optional", "required"] = "optional"
    captcha: Captcha | None = None
