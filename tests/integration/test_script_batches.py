"""A Lua script called concurrently goes to real Redis in shared round trips; each caller gets its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError, ResponseError

from services.intake.ticket_ids import TicketIds, remembered_key
from shared.script_batches import MAX_CALLS_PER_ROUND_TRIP, ScriptBatches
from shared.settings import Settings
from shared.state import StateNotRestored, forget_restored
from switchboard.stack import free_loopback_port

pytestmark = pytest.mark.integration

# Echoes ARGV[1] after counting the call in KEYS[1]; 'refuse' gets an error reply instead.
ECHO = """
if ARGV[1] == 'refuse' then return redis.error_reply('REFUSED ' .. ARGV[1]) end
redis.call('INCR', KEYS[1])
return ARGV[1]
"""


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url, decode_responses=True)
    yield client
    await client.aclose()


def counting_round_trips(redis: Redis) -> list[int]:
    """Records each pipeline the client opens (one round trip of the batches each)."""
    opened: list[int] = []
    pipeline = redis.pipeline

    def counted(*args, **kwargs):
        opened.append(1)
        return pipeline(*args, **kwargs)

    redis.pipeline = counted  # type: ignore[method-assign]
    return opened


async def test_concurrent_calls_share_round_trips_and_each_gets_its_own_answer(redis):
    echo = ScriptBatches(redis, ECHO)
    round_trips = counting_round_trips(redis)
    calls = 3 * MAX_CALLS_PER_ROUND_TRIP
    answers = await asyncio.gather(*(echo(["sb:test:calls"], [f"call-{index}"]) for index in range(calls)))
    assert answers == [f"call-{index}" for index in range(calls)]
    assert int(await redis.get("sb:test:calls")) == calls
    assert 3 <= len(round_trips) < calls


async def test_an_error_reply_reaches_only_its_own_caller(redis):
    echo = ScriptBatches(redis, ECHO)
    answers = await asyncio.gather(
        echo(["sb:test:calls"], ["before"]),
        echo(["sb:test:calls"], ["refuse"]),
        echo(["sb:test:calls"], ["after"]),
        return_exceptions=True,
    )
    assert answers[0] == "before" and answers[2] == "after"
    assert isinstance(answers[1], ResponseError) and "REFUSED refuse" in str(answers[1])


async def test_a_script_redis_forgot_is_loaded_again(redis):
    echo = ScriptBatches(redis, ECHO)
    assert await echo(["sb:test:calls"], ["first"]) == "first"
    await redis.script_flush()
    assert await asyncio.gather(echo(["sb:test:calls"], ["a"]), echo(["sb:test:calls"], ["b"])) == ["a", "b"]


async def test_a_caller_that_stops_waiting_leaves_the_others_their_answers(redis):
    echo = ScriptBatches(redis, ECHO)
    impatient = asyncio.ensure_future(echo(["sb:test:calls"], ["impatient"]))
    patient = asyncio.ensure_future(echo(["sb:test:calls"], ["patient"]))
    await asyncio.sleep(0)
    impatient.cancel()
    assert await patient == "patient"
    assert await echo(["sb:test:calls"], ["later"]) == "later"


async def test_every_caller_hears_that_redis_is_unreachable():
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_loopback_port()}/0", socket_connect_timeout=1)
    echo = ScriptBatches(unreachable, ECHO)
    try:
        answers = await asyncio.gather(*(echo(["k"], [str(index)]) for index in range(5)), return_exceptions=True)
    finally:
        await unreachable.aclose()
    assert all(isinstance(answer, ConnectionError) for answer in answers)


async def test_concurrent_ticket_resolutions_mint_distinct_tickets_and_remember_them(redis):
    ids = TicketIds(redis, "SB")
    keys = [f"form:contact:{index}" for index in range(500)]
    resolved = await asyncio.gather(*(ids.resolve(key, found=None, lookup=(), remember=()) for key in keys))
    tickets = [ticket for ticket, _ in resolved]
    assert len(set(tickets)) == len(keys)
    assert [await redis.get(remembered_key(key)) for key in keys] == tickets
    # A retried message keeps its ticket; while the state is missing, none is minted, in a batch or not.
    await forget_restored(redis)
    retried, new = await asyncio.gather(
        ids.resolve(keys[7], found=None, lookup=(), remember=()),
        ids.resolve("form:contact:new", found=None, lookup=(), remember=()),
        return_exceptions=True,
    )
    assert retried == (tickets[7], None)
    assert isinstance(new, StateNotRestored)
