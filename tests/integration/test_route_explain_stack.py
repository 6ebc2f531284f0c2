"""`switchboard route explain` beside a running stack: it finds the stack's Redis as the other commands do."""

from __future__ import annotations

import json

import pytest
import redis
from click.testing import CliRunner

from shared.read_model import contact_key, identity_key
from shared.settings import EXAMPLE_CONFIG
from switchboard.cli import main
from tests.unit.test_route_explain import SPANISH_REFUND

pytestmark = pytest.mark.integration


def test_the_sender_s_contact_is_looked_up_in_the_redis_the_running_stack_recorded(settings, tmp_path):
    store = redis.Redis.from_url(settings.redis_url)
    store.set(identity_key("email:lucia@cliente.example"), "c_lucia")
    store.hset(contact_key("c_lucia"), mapping={"id": "c_lucia", "name": "Lucía"})
    data_dir = tmp_path / "stack"
    data_dir.mkdir()
    # What `switchboard up` records of the Kafka and Redis it started.
    (data_dir / "infra.json").write_text(
        json.dumps({"kafka_bootstrap": settings.kafka_bootstrap, "redis_url": settings.redis_url})
    )
    message = tmp_path / "refund.eml"
    message.write_bytes(SPANISH_REFUND.encode())

    result = CliRunner(
        env={"COLUMNS": "250", "SWITCHBOARD_DATA_DIR": str(data_dir), "SWITCHBOARD_REDIS_URL": None}
    ).invoke(main, ["route", "explain", str(message), "--config", str(EXAMPLE_CONFIG)])

    assert result.exit_code == 0, result.output
    assert "c_lucia" in result.output and "no Redis configured" not in result.output
