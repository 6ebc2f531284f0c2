"""Slack request signing, checked by the very function that guards POST /v1/slack/events.

The vector and its negative cases come from Slack's docs via python-slack-sdk's own tests, in the
corpus folder beside the repository (see ../shared/corpora/README.md).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from slack_sdk.signature import Clock, SignatureVerifier

from services.intake.slack_events import is_signed_by_slack, slack_routes
from shared.settings import Settings

VECTORS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "webhooks" / "slack" / "signature_vectors.json"

pytestmark = pytest.mark.skipif(
    not VECTORS.exists(), reason=f"Slack signing corpus not found at {VECTORS} (it lives beside the repository)"
)


class FixedClock(Clock):
    def __init__(self, now: float):
        self._now = now

    def now(self) -> float:
        return self._now


@pytest.fixture(scope="module")
def vector() -> dict:
    return json.loads(VECTORS.read_text())


@pytest.fixture(scope="module")
def upstream_cases(vector: dict) -> dict[str, dict]:
    return {case["name"]: case for case in vector["cases_from_upstream_test"]}


def verifier_at(vector: dict, now: float, secret: str | None = None) -> SignatureVerifier:
    return SignatureVerifier(secret or vector["signing_secret"], clock=FixedClock(now))


def signed_headers(vector: dict) -> dict[str, str]:
    return {"X-Slack-Request-Timestamp": vector["timestamp"], "X-Slack-Signature": vector["expected_signature"]}


def test_the_vector_verifies_at_its_own_time(vector, upstream_cases):
    case = upstream_cases["test_is_valid_request"]
    verifier = verifier_at(vector, case["clock_now"])
    assert case["expect"] is True
    assert is_signed_by_slack(verifier, vector["body"].encode(), case["headers"])


def test_the_vector_verifies_up_to_300_seconds_later(vector):
    verifier = verifier_at(vector, int(vector["timestamp"]) + 300)
    assert is_signed_by_slack(verifier, vector["body"].encode(), signed_headers(vector))


def test_a_changed_body_fails(vector, upstream_cases):
    case = upstream_cases["test_is_valid_request_invalid_body"]
    verifier = verifier_at(vector, case["clock_now"])
    tampered = (vector["body"] + case["body_suffix_appended"]).encode()
    assert case["expect"] is False
    assert not is_signed_by_slack(verifier, tampered, signed_headers(vector))


@pytest.mark.parametrize("seconds_late", [301, None], ids=["301s-old", "now"])
def test_an_expired_timestamp_fails(vector, seconds_late):
    now = time.time() if seconds_late is None else int(vector["timestamp"]) + seconds_late
    assert not is_signed_by_slack(verifier_at(vector, now), vector["body"].encode(), signed_headers(vector))


def test_a_timestamp_from_the_future_fails(vector):
    verifier = verifier_at(vector, int(vector["timestamp"]) - 301)
    assert not is_signed_by_slack(verifier, vector["body"].encode(), signed_headers(vector))


def test_another_secret_fails(vector):
    verifier = verifier_at(vector, int(vector["timestamp"]), secret="not-the-signing-secret")
    assert not is_signed_by_slack(verifier, vector["body"].encode(), signed_headers(vector))


@pytest.mark.parametrize("missing", ["body", "X-Slack-Request-Timestamp", "X-Slack-Signature", "headers"])
def test_anything_missing_fails(vector, missing):
    body = b"" if missing == "body" else vector["body"].encode()
    headers = {} if missing == "headers" else {k: v for k, v in signed_headers(vector).items() if k != missing}
    assert not is_signed_by_slack(verifier_at(vector, int(vector["timestamp"])), body, headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Slack-Request-Timestamp": "yesterday", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": "v1=a2114d57b48eac39b9ad189dd8316235"},
    ],
    ids=["timestamp-not-a-number", "foreign-signature-scheme"],
)
def test_garbage_headers_fail_without_raising(vector, headers):
    assert not is_signed_by_slack(verifier_at(vector, int(vector["timestamp"])), vector["body"].encode(), headers)


def test_a_body_that_is_not_utf8_fails_without_raising(vector):
    verifier = verifier_at(vector, int(vector["timestamp"]))
    assert not is_signed_by_slack(verifier, vector["body"].encode() + b"\xff", signed_headers(vector))


@pytest.mark.parametrize("secret", [None, "", "   "], ids=["unset", "empty", "blank"])
def test_without_a_usable_signing_secret_slack_intake_is_off(secret, caplog):
    # SignatureVerifier refuses such secrets (upstream's test_invalid_signing_secret): the endpoint is not served.
    settings = Settings(
        slack_bot_token=SecretStr("xoxb-test"),
        slack_signing_secret=None if secret is None else SecretStr(secret),
    )
    with caplog.at_level(logging.WARNING, logger="services.intake.slack_events"):
        # Off before the intake is ever used, so none is needed here.
        assert slack_routes(intake=None, settings=settings) is None  # type: ignore[arg-type]
    assert "Slack intake is off: SWITCHBOARD_SLACK_SIGNING_SECRET not set" in caplog.text
