"""What Slack message events mean for a ticket: plain text with visible links, and everything a person added."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.intake.slack_files import may_receive_token, reference
from services.intake.slack_messages import CustomerPost, SlackFile, customer_post, plain_text
from shared.config import load_config
from shared.settings import EXAMPLE_CONFIG
from tests.fuzz_inputs import json_values, slack_message, slack_message_changed

FIELD_REPORT = Path(__file__).resolve().parents[1] / "fixtures" / "field-reports" / "15-slack-file-share.json"
CONFIG = load_config(EXAMPLE_CONFIG)
CHANNEL = CONFIG.slack_support_channels[0]
CUSTOMER = "U0CUSTOMER"


def message(text: str = "", **fields: Any) -> dict[str, Any]:
    return {"type": "message", "channel": CHANNEL, "user": CUSTOMER, "text": text, "ts": "1718000000.000100", **fields}


def changed(original: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_changed",
        "channel": CHANNEL,
        "ts": "1718000050.000100",
        "message": {**original, **fields},
        "previous_message": original,
    }


def post(event: dict[str, Any]) -> CustomerPost:
    result = customer_post(event, CONFIG)
    assert result is not None, "expected a customer post"
    return result


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("our <https://example.com/status|status page> is red", "our status page (https://example.com/status) is red"),
        ("see <https://example.com>", "see https://example.com"),
        ("see <https://example.com|example.com>", "see https://example.com"),
        ("mail <mailto:ana@example.com|ana@example.com>", "mail ana@example.com"),
        ("<@U0ANA> and <@U0BEN|ben> look", "@U0ANA and @ben look"),
        ("in <#C0GENERAL|general> and <#C0RANDOM>", "in #general and #C0RANDOM"),
        ("<!here> <!channel> <!subteam^S0TEAM|@billing>", "@here @channel @billing"),
        ("since <!date^1392734382^{date}|Feb 18, 2014>", "since Feb 18, 2014"),
        ("a &lt; b &amp;&amp; c &gt; d", "a < b && c > d"),
        ("&amp;lt; stays text", "&lt; stays text"),
        ("<https://example.com/?a=1&amp;b=2|query>", "query (https://example.com/?a=1&b=2)"),
    ],
    ids=["link", "bare-link", "link-labelled-itself", "mailto", "users", "channels", "special", "date", "escapes",
         "escaped-escape", "escaped-url"],
)  # fmt: skip
def test_slack_markup_becomes_plain_text_with_visible_links(markup, text):
    assert plain_text(markup) == text


@given(st.text())
def test_plain_text_never_raises_and_leaves_text_without_markup_alone(text):
    converted = plain_text(text)
    if not any(character in text for character in "<&"):
        assert converted == text


def test_the_field_report_file_share_carries_its_file():
    event = json.loads(FIELD_REPORT.read_text())
    config = CONFIG.model_copy(update={"slack_support_channels": [event["channel"]]})
    result = customer_post(event, config)
    assert result is not None and result.text == "Checkout fails with this error"
    [file] = result.files
    assert (file.id, file.label, file.content_type) == ("F07ABC123", "checkout-error.png", "image/png")
    assert file.size == 48213
    assert file.url_private_download.endswith("/download/checkout-error.png") and not file.needs_file_info


def test_a_slack_connect_file_leaves_its_details_to_files_info():
    external = {"id": "F1", "mode": "file_access", "file_access": "check_file_info"}
    result = post(message(subtype="file_share", files=[external]))
    assert result.files[0].needs_file_info


def test_a_message_someone_shared_into_the_channel_is_carried():
    shared = {
        "is_share": True,
        "is_msg_unfurl": True,
        "author_name": "Rui",
        "text": "the <https://example.com/report|report> is empty",
        "from_url": "https://partner.slack.com/archives/C1/p1",
        "files": [{"id": "F2", "name": "report.pdf", "mimetype": "application/pdf", "size": 10}],
    }
    result = post(message("Look at this", attachments=[shared]))
    assert result.text == (
        "Look at this\n[shared message from Rui (https://partner.slack.com/archives/C1/p1)]\n"
        "the report (https://example.com/report) is empty"
    )
    assert [file.id for file in result.files] == ["F2"]


def test_a_link_preview_slack_made_adds_nothing():
    preview = {"title": "Example Domain", "from_url": "https://example.com", "original_url": "https://example.com"}
    assert post(message("see <https://example.com>", attachments=[preview])).text == "see https://example.com"


def test_links_only_in_rich_text_blocks_are_listed():
    blocks = [
        {
            "type": "rich_text",
            "elements": [
                {
                    "type": "rich_text_section",
                    "elements": [
                        {"type": "text", "text": "see "},
                        {"type": "link", "url": "https://docs.example.com", "text": "docs"},
                        {"type": "link", "url": "https://example.com"},
                    ],
                }
            ],
        }
    ]
    assert post(message("see docs <https://example.com>", blocks=blocks)).text == (
        "see docs https://example.com\n[link: https://docs.example.com]"
    )


def test_an_edit_that_adds_a_file_is_an_edit_carrying_it():
    original = message("Checkout fails")
    file = {"id": "F3", "name": "error.png", "mimetype": "image/png", "size": 3}
    result = post(changed(original, files=[file], subtype="file_share"))
    assert result.edit_of == f"{CHANNEL}:{original['ts']}" and result.text == "Checkout fails"
    assert [f.id for f in result.files] == ["F3"]


def test_a_file_share_edit_keeps_its_files():
    file = {"id": "F4", "name": "error.png", "mimetype": "image/png", "size": 3}
    original = message("Checkout fails", subtype="file_share", files=[file])
    result = post(changed(original, text="Checkout fails since Monday"))
    assert result.text == "Checkout fails since Monday" and [f.id for f in result.files] == ["F4"]


@pytest.mark.parametrize(
    "fields",
    [
        {"attachments": [{"title": "Example", "from_url": "https://example.com"}]},
        {"files": [{"id": "F5", "name": "a.png", "thumb_64": "https://files.slack.com/thumb"}]},
    ],
    ids=["link-preview", "file-metadata"],
)
def test_changes_that_add_nothing_a_person_wrote_are_ignored(fields):
    original = message("see https://example.com", files=[{"id": "F5", "name": "a.png"}])
    assert customer_post(changed(original, **fields), CONFIG) is None


@pytest.mark.parametrize(
    "event",
    [
        {"type": "message", "channel": CHANNEL, "user": CUSTOMER, "ts": "not-a-ts", "text": "hi"},
        {"type": "message", "channel": CHANNEL, "user": CUSTOMER, "ts": "1.1", "files": "none"},
        {"type": "message", "channel": [CHANNEL], "user": CUSTOMER, "ts": "1.1"},
        changed(message("x"), message=None),
        ["not", "an", "event"],
    ],
    ids=["bad-ts", "files-not-a-list", "channel-a-list", "change-without-message", "not-an-object"],
)
def test_malformed_events_are_ignored_never_raised(event):
    assert customer_post(event, CONFIG) is None


@given(st.one_of(slack_message, slack_message_changed, json_values))
def test_any_event_is_a_post_or_ignored_never_raised(event):
    result = customer_post(event, CONFIG)
    assert result is None or isinstance(result, CustomerPost)


def test_a_file_not_stored_is_named_with_type_size_and_link():
    file = SlackFile(id="F6", name="big.mov", mimetype="video/quicktime", size=50_000_000, permalink="https://x/F6")
    assert (
        reference(file, "too big")
        == "[file big.mov (video/quicktime, 50000000 bytes) not stored: too big] https://x/F6"
    )
    assert reference(SlackFile(id="F7"), "gone") == "[file F7 not stored: gone]"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://files.slack.com/files-pri/T1-F1/download/a.png", True),
        ("https://files.slack-gov.com/files-pri/T1-F1/a.png", True),
        ("http://files.slack.com/files-pri/T1-F1/a.png", False),
        ("https://files.slack.com.evil.example/a.png", False),
        ("https://evilslack.com/a.png", False),
        ("http://127.0.0.1:9/files-pri/T1-F1/a.png", True),
        ("http://[::1", False),
        ("not a url", False),
    ],
)
def test_the_bot_token_goes_only_to_slack_file_hosts(url, allowed):
    assert may_receive_token(url, api_url="http://127.0.0.1:9/api/") is allowed
