import aiosmtplib
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from redis.exceptions import ConnectionError as RedisConnectionError
from slack_sdk.errors import SlackApiError

from shared.engine import is_infrastructure_outage


def test_only_our_own_kafka_and_redis_are_waited_out_forever():
    assert is_infrastructure_outage(RedisConnectionError("down"))
    assert is_infrastructure_outage(KafkaConnectionError())
    assert is_infrastructure_outage(KafkaTimeoutError())
    assert not is_infrastructure_outage(MessageSizeTooLargeError())
    # The outside world fails too; those are retried to a deadline, then dead-lettered.
    assert not is_infrastructure_outage(aiosmtplib.SMTPConnectError("relay refused"))
    assert not is_infrastructure_outage(SlackApiError("ratelimited", {"ok": False}))
    assert not is_infrastructure_outage(TimeoutError())
