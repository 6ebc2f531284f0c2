import json

from click.testing import CliRunner

from switchboard.cli import main


def test_asyncapi_documents_describe_every_consumed_topic_with_its_event_schemas(tmp_path):
    result = CliRunner().invoke(main, ["docs", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    router = json.loads((tmp_path / "router.asyncapi.json").read_text())
    notifier = json.loads((tmp_path / "notifier.asyncapi.json").read_text())
    assert router["asyncapi"].startswith("3.")
    addresses = {channel["address"] for channel in router["channels"].values() if "address" in channel}
    assert {"switchboard.inbound.v1", "switchboard.commands.v1"} <= addresses
    schemas = json.dumps(notifier["components"]["schemas"])
    for event_type in ("ticket.created", "ticket.assigned", "sla.breached"):
        assert event_type in schemas
