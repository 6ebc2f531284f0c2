"""The Graph API client and the notifier's WhatsApp transport against the fake Cloud API (a loopback HTTP
server answering in the real shapes): what is sent, and how Graph's errors become the notifier's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from services.notifier.errors import RateLimited, Refused
from services.notifier.plan import Delivery
from services.notifier.whatsapp import WhatsAppTransport
from shared.events import ReplyRoute
from shared.settings import Settings
from shared.whatsapp_graph import GraphError, Tracking, WhatsAppGraph
from tests.fakes.whatsapp_api import FakeWhatsAppApi


@pytest.fixture
def fake() -> Iterator[FakeWhatsAppApi]:
    with FakeWhatsAppApi() as api:
        yield api


def graph_for(fake: FakeWhatsAppApi, token: str | None = None) -> WhatsAppGraph:
    return WhatsAppGraph(
        Settings(
            whatsapp_access_token=SecretStr(token or fake.access_token),
            whatsapp_phone_number_id=fake.phone_number_id,
            whatsapp_api_url=fake.base_url.rstrip("/"),
        )
    )


def reply(address: str = "34600123456") -> Delivery:
    return Delivery(
        key=str(uuid.uuid4()),
        ticket_id="SB-1001",
        purpose="reply",
        target=f"whatsapp:{address}",
        text="Your parcel left today.",
        route=ReplyRoute(channel="whatsapp", address=address, reply_to_id="wamid.IN"),
        message_id=str(uuid.uuid4()),
    )


async def test_a_reply_quotes_the_customers_message_and_carries_its_ticket(fake):
    transport = WhatsAppTransport(graph_for(fake))
    try:
        delivery = reply()
        sent = await transport.send(delivery, None)
    finally:
        await transport.aclose()
    [call] = fake.calls_to("messages")
    assert sent.external_id == call.response["messages"][0]["id"]
    assert call.args["to"] == "34600123456" and call.text == "Your parcel left today."
    assert call.args["context"] == {"message_id": "wamid.IN"}
    assert Tracking.decode(call.args["biz_opaque_callback_data"]) == Tracking("SB-1001", "reply", delivery.message_id)


@pytest.mark.parametrize(
    ("status", "code", "raised"),
    [(400, 131047, Refused), (400, 131026, Refused), (400, 130429, RateLimited), (429, 80007, RateLimited)],
)
async def test_graph_errors_become_refusals_or_rate_limits(fake, status, code, raised):
    fake.fail_next("messages", status, code, "refused by the fake")
    transport = WhatsAppTransport(graph_for(fake))
    try:
        with pytest.raises(raised):
            await transport.send(reply(), None)
    finally:
        await transport.aclose()


async def test_trouble_on_graphs_side_is_retried_not_refused(fake):
    fake.fail_next("messages", 500, 1, "An unknown error occurred")
    transport = WhatsAppTransport(graph_for(fake))
    try:
        with pytest.raises(GraphError) as error:
            await transport.send(reply(), None)
    finally:
        await transport.aclose()
    assert error.value.transient and not error.value.rate_limited


async def test_media_is_looked_up_then_downloaded_with_the_token_and_bounded(fake):
    fake.add_media("2001", b"x" * 1000, "application/pdf")
    graph = graph_for(fake)
    try:
        media = await graph.media("2001")
        assert (media.mime_type, media.size) == ("application/pdf", 1000)
        assert await graph.download(media.url, 1000) == b"x" * 1000
        assert await graph.download(media.url, 999) is None, "not read past the limit"
        with pytest.raises(GraphError) as unknown:
            await graph.media("999")
        assert unknown.value.code == 100 and not unknown.value.transient
    finally:
        await graph.aclose()
    wrong = graph_for(fake, token="EAAwrong")
    try:
        with pytest.raises(GraphError) as refused:
            await wrong.media("2001")
        assert (refused.value.status, refused.value.code) == (401, 190)
    finally:
        await wrong.aclose()
