from click.testing import CliRunner

from switchboard.cli import main
from tests.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN


def test_set_webhook_registers_the_url_and_secret(fake_telegram, monkeypatch):
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_BOT_TOKEN", TELEGRAM_TOKEN)
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_WEBHOOK_SECRET", TELEGRAM_SECRET)
    monkeypatch.setenv("SWITCHBOARD_TELEGRAM_API_URL", fake_telegram.base_url)
    result = CliRunner().invoke(main, ["telegram", "set-webhook", "https://desk.example.com/v1/telegram/webhook"])
    assert result.exit_code == 0, result.output
    [call] = fake_telegram.calls_to("setWebhook")
    assert call.args["url"] == "https://desk.example.com/v1/telegram/webhook"
    assert call.args["secret_token"] == TELEGRAM_SECRET


def test_set_webhook_needs_the_credentials(monkeypatch):
    monkeypatch.delenv("SWITCHBOARD_TELEGRAM_BOT_TOKEN", raising=False)
    result = CliRunner().invoke(main, ["telegram", "set-webhook", "https://desk.example.com/hook"])
    assert result.exit_code == 1 and "SWITCHBOARD_TELEGRAM_BOT_TOKEN" in result.output
