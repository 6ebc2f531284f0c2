from redis.asyncio import Redis


def connect_redis(url: str) -> Redis:
    """Every Switchboard process talks to Redis in text, with a short timeout so outages surface."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=10,
    )
