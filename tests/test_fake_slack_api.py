"""The fake Slack Web API answers our slack_sdk client the way Slack does."""

import asyncio
import json
import os
import re
import subprocess
import sys
import textwrap

import httpx
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import BOT_ID, BOT_USER_ID, TEAM_ID, FakeSlackApi

BOT_TOKEN = "xoxb-fake-slack-api-test"
ALICE = {
    "name": "alice",
    "profile": {"email": "alice@example.com", "real_name": "Alice Liddell"},
}
SLACK_TS = re.compile(r"^\d{10}\.\d{6}$")


@pytest.fixture
def slack_api():
    with FakeSlackApi(bot_token=BOT_TOKEN, users={"U0ALICE": ALICE}) as fake:
        yield fake


@pytest.fixture
def client(slack_api):
    return AsyncWebClient(token=BOT_TOKEN, base_url=slack_api.base_url)


def ts_key(ts: str) -> tuple[int, int]:
    seconds, fraction = ts.split(".")
    return int(seconds), int(fraction)


@pytest.mark.asyncio
async def test_post_message_answers_with_ts_and_is_recorded(slack_api, client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Ticket 7*"}}]

    response = await client.chat_postMessage(
        channel="C0SUPPORT", text="Ticket 7", blocks=blocks, thread_ts="1700000000.000100"
    )

    assert response["ok"] is True
    assert response["channel"] == "C0SUPPORT"
    assert SLACK_TS.match(response["ts"])
    assert response["message"] == {
        "type": "message",
        "text": "Ticket 7",
        "user": BOT_USER_ID,
        "bot_id": BOT_ID,
        "team": TEAM_ID,
        "ts": response["ts"],
        "thread_ts": "1700000000.000100",
        "blocks": blocks,
    }
    [call] = await slack_api.wait_for_calls("chat.postMessage")
    assert call.token == BOT_TOKEN
    assert call.args["channel"] == "C0SUPPORT"
    assert call.args["blocks"] == blocks
    assert call.response["ts"] == response["ts"]


@pytest.mark.asyncio
async def test_message_timestamps_strictly_increase(client):
    timestamps = [(await client.chat_postMessage(channel="C0SUPPORT", text=f"n{i}"))["ts"] for i in range(5)]

    assert timestamps == sorted(timestamps, key=ts_key)
    assert len(set(timestamps)) == len(timestamps)


@pytest.mark.asyncio
async def test_posting_to_a_user_lands_in_the_dm_conversations_open_returns(client):
    posted = await client.chat_postMessage(channel="U0ALICE", text="hello")
    opened = await client.conversations_open(users="U0ALICE")

    assert posted["channel"].startswith("D")
    assert opened["channel"]["id"] == posted["channel"]


@pytest.mark.asyncio
# slack_sdk warns before sending a message without text; sending one is the point.
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
async def test_post_message_without_text_or_blocks_fails_with_no_text(client):
    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0SUPPORT")

    assert raised.value.response["error"] == "no_text"


@pytest.mark.asyncio
async def test_post_message_without_channel_fails_with_channel_not_found(client):
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("chat.postMessage", json={"text": "lost"})

    assert raised.value.response["error"] == "channel_not_found"


@pytest.mark.asyncio
async def test_invalid_token_fails_with_invalid_auth(slack_api):
    intruder = AsyncWebClient(token="xoxb-wrong", base_url=slack_api.base_url)

    with pytest.raises(SlackApiError) as raised:
        await intruder.chat_postMessage(channel="C0SUPPORT", text="hi")

    assert raised.value.response.status_code == 200
    assert raised.value.response["error"] == "invalid_auth"
    [call] = slack_api.calls_to("chat.postMessage")
    assert call.token == "xoxb-wrong"
    assert not call.ok


@pytest.mark.asyncio
async def test_rate_limited_call_is_retried_after_retry_after_and_succeeds(slack_api):
    slack_api.rate_limit_next("chat.postMessage", retry_after=1)
    retrying_client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=slack_api.base_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )

    response = await retrying_client.chat_postMessage(channel="C0SUPPORT", text="hi")

    assert response["ok"] is True
    limited, succeeded = slack_api.calls_to("chat.postMessage")
    assert limited.rate_limited and limited.response == {"ok": False, "error": "ratelimited"}
    assert succeeded.ok and not succeeded.rate_limited
    assert succeeded.at - limited.at >= 1


@pytest.mark.asyncio
async def test_rate_limit_reaches_a_client_without_retries_as_http_429(slack_api, client):
    slack_api.rate_limit_next("chat.postMessage", retry_after=7)

    with pytest.raises(SlackApiError) as raised:
        await client.chat_postMessage(channel="C0SUPPORT", text="hi")

    assert raised.value.response.status_code == 429
    assert raised.value.response.headers["Retry-After"] == "7"
    assert raised.value.response["error"] == "ratelimited"


@pytest.mark.asyncio
async def test_fail_next_fails_only_the_given_number_of_calls(slack_api, client):
    slack_api.fail_next("chat.postMessage", "is_archived", count=2)

    for _ in range(2):
        with pytest.raises(SlackApiError) as raised:
            await client.chat_postMessage(channel="C0SUPPORT", text="hi")
        assert raised.value.response["error"] == "is_archived"
    assert (await client.chat_postMessage(channel="C0SUPPORT", text="hi"))["ok"]


@pytest.mark.asyncio
async def test_users_info_answers_known_users_and_rejects_unknown_ones(client):
    response = await client.users_info(user="U0ALICE")

    assert response["user"]["id"] == "U0ALICE"
    assert response["user"]["name"] == "alice"
    assert response["user"]["profile"]["email"] == "alice@example.com"
    assert response["user"]["profile"]["real_name"] == "Alice Liddell"
    with pytest.raises(SlackApiError) as raised:
        await client.users_info(user="U0NOBODY")
    assert raised.value.response["error"] == "user_not_found"


@pytest.mark.asyncio
async def test_users_get_presence_reports_what_the_test_set(slack_api, client):
    assert (await client.users_getPresence(user="U0ALICE"))["presence"] == "active"

    slack_api.set_presence("U0ALICE", "away")

    assert (await client.users_getPresence(user="U0ALICE"))["presence"] == "away"


@pytest.mark.asyncio
async def test_auth_test_identifies_the_bot(client):
    response = await client.auth_test()

    assert response["user_id"] == BOT_USER_ID
    assert response["bot_id"] == BOT_ID
    assert response["team_id"] == TEAM_ID
    assert response["url"].startswith("https://")


@pytest.mark.asyncio
async def test_chat_update_edits_a_posted_message(client):
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="Ticket 7: open")

    updated = await client.chat_update(channel=posted["channel"], ts=posted["ts"], text="Ticket 7: closed")

    assert updated["ts"] == posted["ts"]
    assert updated["text"] == "Ticket 7: closed"
    assert updated["message"]["edited"]["user"] == BOT_USER_ID
    with pytest.raises(SlackApiError) as raised:
        await client.chat_update(channel="C0SUPPORT", ts="1.000001", text="x")
    assert raised.value.response["error"] == "message_not_found"


@pytest.mark.asyncio
async def test_unimplemented_method_fails_with_unknown_method(client):
    with pytest.raises(SlackApiError) as raised:
        await client.api_call("pins.add", json={"channel": "C0SUPPORT"})

    assert raised.value.response["error"] == "unknown_method"


def test_form_and_query_arguments_and_token_argument_are_recorded(slack_api):
    form = httpx.post(
        slack_api.base_url + "chat.postMessage",
        params={"channel": "C0SUPPORT"},
        data={"token": BOT_TOKEN, "text": "via form", "blocks": "[]"},
    ).json()
    query = httpx.get(
        slack_api.base_url + "users.info",
        params={"user": "U0ALICE"},
        headers={"Authorization": f"Bearer {BOT_TOKEN}"},
    ).json()

    assert form["ok"] and query["ok"]
    [post] = slack_api.calls_to("chat.postMessage")
    assert post.token == BOT_TOKEN
    assert post.args == {
        "channel": "C0SUPPORT",
        "token": BOT_TOKEN,
        "text": "via form",
        "blocks": "[]",
    }
    assert slack_api.calls_to("users.info")[0].args == {"user": "U0ALICE"}


def test_missing_token_fails_with_not_authed(slack_api):
    response = httpx.post(slack_api.base_url + "auth.test")

    assert response.status_code == 200
    assert response.json() == {"ok": False, "error": "not_authed"}


@pytest.mark.asyncio
async def test_wait_for_calls_counts_only_successful_matching_calls(slack_api, client):
    slack_api.fail_next("chat.postMessage", "channel_not_found")
    with pytest.raises(SlackApiError):
        await client.chat_postMessage(channel="C0GONE", text="lost")
    await client.chat_postMessage(channel="C0SUPPORT", text="first")
    await client.chat_postMessage(channel="C0SUPPORT", text="second")

    calls = await slack_api.wait_for_calls(
        "chat.postMessage", count=1, predicate=lambda call: call.args["text"] == "second"
    )

    assert [call.args["text"] for call in calls] == ["second"]


@pytest.mark.asyncio
async def test_wait_for_calls_times_out_listing_what_was_received(slack_api, client):
    await client.auth_test()

    with pytest.raises(AssertionError, match=r"chat\.postMessage(.|\n)*auth\.test"):
        await slack_api.wait_for_calls("chat.postMessage", timeout=0.2)
    with pytest.raises(AssertionError, match="auth.test"):
        slack_api.wait_for_calls_sync("chat.postMessage", timeout=0.2)


@pytest.mark.asyncio
async def test_wait_for_calls_sync_wakes_when_a_call_arrives(slack_api, client):
    waiting = asyncio.create_task(asyncio.to_thread(slack_api.wait_for_calls_sync, "chat.postMessage", timeout=5))

    await client.chat_postMessage(channel="C0SUPPORT", text="hi")

    [call] = await waiting
    assert call.args["text"] == "hi"


def test_another_process_reaches_the_fake_while_the_test_blocks(slack_api):
    # Our services run as subprocesses and find the fake through this variable.
    script = textwrap.dedent(
        f"""
        import os, urllib.request
        request = urllib.request.Request(
            os.environ["SWITCHBOARD_SLACK_API_URL"] + "auth.test",
            data=b"",
            headers={{"Authorization": "Bearer {BOT_TOKEN}"}},
        )
        print(urllib.request.urlopen(request, timeout=10).read().decode())
        """
    )

    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "SWITCHBOARD_SLACK_API_URL": slack_api.base_url},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )

    assert '"ok":true' in result.stdout.replace(" ", "")
    [call] = slack_api.calls_to("auth.test")
    assert call.ok


async def test_files_are_served_to_the_bot_token_only_and_described_by_files_info(slack_api, client):
    file = slack_api.add_file(b"%PDF-1.7", "invoice.pdf", "application/pdf")
    async with httpx.AsyncClient(follow_redirects=True) as http:
        served = await http.get(file["url_private_download"], headers={"Authorization": f"Bearer {BOT_TOKEN}"})
        signed_out = await http.get(file["url_private_download"])
    assert served.content == b"%PDF-1.7" and served.headers["content-type"] == "application/pdf"
    # Like Slack: no token, no file, but a sign-in page with status 200.
    assert signed_out.status_code == 200 and signed_out.headers["content-type"].startswith("text/html")
    assert [call.ok for call in slack_api.calls_to("files.download")] == [True, False]
    described = await client.files_info(file=file["id"])
    assert described["file"]["size"] == 8 and described["file"]["url_private"] == file["url_private"]
    with pytest.raises(SlackApiError, match="file_not_found"):
        await client.files_info(file="F0NOSUCH")


DELIVERY = {"event_type": "switchboard_delivery", "event_payload": {"key": "k1"}}


@pytest.mark.asyncio
async def test_post_message_keeps_metadata_and_answers_with_it(client):
    posted = await client.chat_postMessage(channel="C0SUPPORT", text="Ticket 7", metadata=DELIVERY)

    assert posted["message"]["metadata"] == DELIVERY
    history = await client.conversations_history(channel="C0SUPPORT", include_all_metadata=True)
    assert history["messages"][0]["metadata"] == DELIVERY


def test_metadata_sent_as_a_json_string_in_a_form_is_kept_as_an_object(slack_api):
    headers = {"Authorization": f"Bearer {BOT_TOKEN}"}
    form = {"channel": "C0SUPPORT", "text": "hi", "metadata": json.dumps(DELIVERY)}

    posted = httpx.post(slack_api.base_url + "chat.postMessage", data=form, headers=headers).json()
    bad_json = httpx.post(slack_api.base_url + "chat.postMessage", data={**form, "metadata": "{"}, headers=headers)
    no_type = httpx.post(
        slack_api.base_url + "chat.postMessage", data={**form, "metadata": '{"event_payload": {}}'}, headers=headers
    )

    assert posted["message"]["metadata"] == DELIVERY
    assert bad_json.json() == {"ok": False, "error": "invalid_metadata_format"}
    assert no_type.json() == {"ok": False, "error": "invalid_metadata_schema"}


@pytest.mark.asyncio
async def test_history_lists_top_level_messages_newest_first_with_metadata_only_when_asked(client):
    first = await client.chat_postMessage(channel="C0SUPPORT", text="first", metadata=DELIVERY)
    await client.chat_postMessage(channel="C0SUPPORT", text="in thread", thread_ts=first["ts"])
    await client.chat_postMessage(channel="C0OTHER", text="elsewhere")
    second = await client.chat_postMessage(channel="C0SUPPORT", text="second")

    plain = await client.conversations_history(channel="C0SUPPORT")
    with_metadata = await client.conversations_history(channel="C0SUPPORT", include_all_metadata=True)

    assert [message["ts"] for message in plain["messages"]] == [second["ts"], first["ts"]]
    assert plain["has_more"] is False
    assert "metadata" not in plain["messages"][1]
    assert with_metadata["messages"][1]["metadata"] == DELIVERY
    assert "metadata" not in with_metadata["messages"][0]


@pytest.mark.asyncio
async def test_history_keeps_to_the_oldest_latest_window(client):
    timestamps = [(await client.chat_postMessage(channel="C0SUPPORT", text=f"n{i}"))["ts"] for i in range(4)]

    between = await client.conversations_history(channel="C0SUPPORT", oldest=timestamps[0], latest=timestamps[3])
    inclusive = await client.conversations_history(
        channel="C0SUPPORT", oldest=timestamps[0], latest=timestamps[3], inclusive=True
    )

    assert [message["ts"] for message in between["messages"]] == [timestamps[2], timestamps[1]]
    assert [message["ts"] for message in inclusive["messages"]] == timestamps[::-1]


@pytest.mark.asyncio
async def test_history_pages_through_a_cursor(client):
    timestamps = [(await client.chat_postMessage(channel="C0SUPPORT", text=f"n{i}"))["ts"] for i in range(5)]

    first = await client.conversations_history(channel="C0SUPPORT", limit=2)
    # slack_sdk follows the cursor, answering each page in the same response object.
    pages = [page["messages"] async for page in await client.conversations_history(channel="C0SUPPORT", limit=2)]

    assert first["has_more"] is True
    assert first["response_metadata"]["next_cursor"]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [message["ts"] for page in pages for message in page] == timestamps[::-1]


@pytest.mark.asyncio
async def test_history_of_a_dm_is_read_by_its_conversation_id_not_the_user_id(client):
    await client.chat_postMessage(channel="U0ALICE", text="you have a ticket")
    dm = (await client.conversations_open(users="U0ALICE"))["channel"]["id"]

    history = await client.conversations_history(channel=dm)

    assert [message["text"] for message in history["messages"]] == ["you have a ticket"]
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_history(channel="U0ALICE")
    assert raised.value.response["error"] == "channel_not_found"


@pytest.mark.asyncio
async def test_replies_list_the_parent_then_its_replies_oldest_first(client):
    parent = await client.chat_postMessage(channel="C0SUPPORT", text="ticket")
    other = await client.chat_postMessage(channel="C0SUPPORT", text="another ticket")
    replies = [
        (await client.chat_postMessage(channel="C0SUPPORT", text=f"r{i}", thread_ts=parent["ts"], metadata=DELIVERY))[
            "ts"
        ]
        for i in range(3)
    ]
    await client.chat_postMessage(channel="C0SUPPORT", text="other thread", thread_ts=other["ts"])

    thread = await client.conversations_replies(
        channel="C0SUPPORT", ts=parent["ts"], oldest=replies[0], include_all_metadata=True
    )
    pages = [
        page["messages"]
        async for page in await client.conversations_replies(channel="C0SUPPORT", ts=parent["ts"], limit=2)
    ]

    assert [message["ts"] for message in thread["messages"]] == [parent["ts"], *replies[1:]]
    assert thread["messages"][1]["metadata"] == DELIVERY
    assert [[message["text"] for message in page] for page in pages] == [["ticket", "r0"], ["r1", "r2"]]
    with pytest.raises(SlackApiError) as raised:
        await client.conversations_replies(channel="C0SUPPORT", ts="1.000001")
    assert raised.value.response["error"] == "thread_not_found"
