"""The form's spam checks (services/intake/spam.py): honeypot, signed render stamps, fill time, captcha."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.intake.spam import (
    BAD_STAMP,
    CAPTCHA_FAILED,
    HONEYPOT,
    TOO_FAST,
    FormStamps,
    GuardFields,
    Missing,
    Suspect,
    judge,
    split_guard_fields,
)
from shared import i18n
from shared.guard_config import Captcha, Spam

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STAMPS = FormStamps("installation secret")
moments = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC))


@given(moments, st.floats(min_value=0, max_value=3 * 24 * 3600))
def test_a_stamp_tells_its_age_to_the_millisecond(issued, age):
    stamp = STAMPS.issue("contact", issued)
    read = STAMPS.age_seconds(stamp, "contact", issued + timedelta(seconds=age))
    assert read is not None and abs(read - age) < 0.002


@given(moments, st.text(max_size=80))
def test_a_stamp_is_worth_nothing_for_another_form_another_secret_or_altered(issued, junk):
    stamp = STAMPS.issue("contact", issued)
    assert STAMPS.age_seconds(stamp, "other-form", issued) is None
    assert FormStamps("another secret").age_seconds(stamp, "contact", issued) is None
    millis, _, mac = stamp.partition(".")
    # Made older to pass the fill time: the signature no longer matches.
    assert STAMPS.age_seconds(f"{int(millis) - 60_000}.{mac}", "contact", issued) is None
    if junk != stamp:
        assert STAMPS.age_seconds(junk, "contact", issued) is None
    # Any characters after the dot: compared byte-wise (hmac.compare_digest raises on non-ASCII text).
    assert STAMPS.age_seconds(f"{millis}.{junk}é", "contact", issued) is None


def test_a_stamp_from_the_future_is_forged():
    assert STAMPS.age_seconds(STAMPS.issue("contact", NOW + timedelta(minutes=5)), "contact", NOW) is None


def test_the_guard_fields_are_taken_out_of_the_form_fields():
    own, guard = split_guard_fields({"name": "Ana", "website": "http://x", "form_stamp": "1.a", "captcha_token": 7})
    assert own == {"name": "Ana"}
    assert guard == GuardFields(honeypot="http://x", stamp="1.a", captcha="7")
    assert split_guard_fields({"name": "Ana"}) == ({"name": "Ana"}, GuardFields())


def test_a_person_with_a_stamp_old_enough_passes():
    assert judge(GuardFields(honeypot="", stamp="s"), 12.0, None, Spam()) is None
    # An API client without a stamp passes while stamps are optional.
    assert judge(GuardFields(), None, None, Spam()) is None


def test_each_bot_sign_gives_its_reason_code():
    spam = Spam(min_fill_time=timedelta(seconds=3), stamp_max_age=timedelta(hours=1))
    assert judge(GuardFields(honeypot="buy now", stamp="s"), 10.0, None, spam).reason_code == HONEYPOT
    assert judge(GuardFields(stamp="s"), None, None, spam).reason_code == BAD_STAMP
    assert judge(GuardFields(stamp="s"), 7200.0, None, spam).reason_code == BAD_STAMP
    too_fast = judge(GuardFields(stamp="s"), 0.4, None, spam)
    assert isinstance(too_fast, Suspect) and too_fast.reason_code == TOO_FAST and "0.40 s" in too_fast.reason
    # The honeypot is off: a filled one is no sign.
    assert judge(GuardFields(honeypot="x"), None, None, Spam(honeypot=False)) is None


def test_what_the_page_always_sends_is_refused_when_missing_not_quarantined():
    required = judge(GuardFields(), None, None, Spam(stamp="required"))
    assert isinstance(required, Missing) and required.field == "form_stamp"
    captcha = Spam(captcha=Captcha(provider="turnstile", site_key="0x4AAA"))
    missing = judge(GuardFields(stamp="s"), 10.0, None, captcha)
    assert isinstance(missing, Missing) and missing.field == "captcha_token"
    # What the customer is told comes from the catalogues, in their language.
    assert i18n.texts("en")(required.text_id) == "Please reload the page and send the form again."
    assert i18n.texts("zh-Hans")(missing.text_id) == "请完成人机验证。"
    assert judge(GuardFields(stamp="s", captcha="t"), 10.0, False, captcha).reason_code == CAPTCHA_FAILED
    assert judge(GuardFields(stamp="s", captcha="t"), 10.0, True, captcha) is None


def test_captcha_providers_have_their_own_siteverify_url_unless_configured():
    assert Captcha(provider="turnstile", site_key="k").siteverify_url().startswith("https://challenges.cloudflare.com/")
    assert Captcha(provider="hcaptcha", site_key="k").siteverify_url() == "https://api.hcaptcha.com/siteverify"
    assert Captcha(provider="hcaptcha", site_key="k", verify_url="http://127.0.0.1:9/v").siteverify_url() == (
        "http://127.0.0.1:9/v"
    )
