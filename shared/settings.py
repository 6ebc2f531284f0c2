"""Process settings from `SWITCHBOARD_*` environment variables (SPEC §2).

Built by app factories (`Settings()`), never read at import time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

EXAMPLE_CONFIG = Path(__file__).with_name("example-config.yaml")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "switchboard"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore")

    kafka_bootstrap: str | None = None
    redis_url: str | None = None
    config: Path = EXAMPLE_CONFIG
    data_dir: Path = Field(default_factory=default_data_dir)
    # Lets several stacks (or test runs) share one Kafka cluster without seeing each other's topics.
    topic_prefix: str = ""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Where router, sla and notifier serve /healthz, /readyz and /metrics; 0 picks a free port.
    ops_port: int = 0
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_max_bytes: int = 25 * 1024 * 1024
    # STARTTLS is offered when both are set (PEM files).
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None

    imap_host: str | None = None
    imap_port: int = 993
    imap_user: str | None = None
    imap_password: SecretStr | None = None
    imap_ssl: bool = True
    imap_mailbox: str = "INBOX"
    imap_poll_seconds: float = 30.0
    # When set, processed mail is moved there instead of only being flagged \Seen.
    imap_processed_folder: str | None = None
    # Mail intake (SMTP and IMAP) reads mail in worker processes; a read past the timeout is refused.
    mail_read_workers: int = Field(default=2, ge=1)
    mail_read_timeout_seconds: float = Field(default=30.0, gt=0)

    smtp_relay_host: str | None = None
    smtp_relay_port: int = 25
    smtp_relay_user: str | None = None
    smtp_relay_password: SecretStr | None = None
    smtp_relay_starttls: bool = False
    mail_from: str | None = None
    support_addresses: str = ""

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    # WhatsApp Cloud API (README "WhatsApp"): the webhook's verify token and the Meta app's secret (which
    # signs every webhook), a system user's access token and the business phone number's ID.
    whatsapp_verify_token: SecretStr | None = None
    whatsapp_app_secret: SecretStr | None = None
    whatsapp_access_token: SecretStr | None = None
    whatsapp_phone_number_id: str | None = None
    whatsapp_api_url: str = "https://graph.facebook.com/v21.0/"
    # WeChat Customer Service through WeCom (企业微信 微信客服): the corp ID, the secret of the app that
    # may call the kf API, and the callback's Token and EncodingAESKey (WeCom admin, API receiving).
    wecom_corp_id: str | None = None
    wecom_secret: SecretStr | None = None
    wecom_token: SecretStr | None = None
    wecom_encoding_aes_key: SecretStr | None = None
    wecom_api_url: str = "https://qyapi.weixin.qq.com/cgi-bin/"

    api_token: SecretStr | None = None
    # Signs the links of CSAT requests and the web form's render stamps (set the same on every machine;
    # without it, one is generated and kept under DATA_DIR, which serves a single-machine stack).
    csat_secret: SecretStr | None = None
    # The captcha provider's secret key (config `spam.captcha`): sent with each token to its siteverify URL.
    captcha_secret: SecretStr | None = None
    # Where customers reach intake-http from outside (links in mails); default http://HTTP_HOST:HTTP_PORT.
    public_url: str | None = None
    log_level: str = "INFO"
    # How long the notifier retries a delivery the outside world keeps failing before it gives up on it.
    retry_deadline_seconds: float = 60.0
    # How long a delivery being made holds off the other notifier instances (after which one of them
    # looks for it in Slack, or makes it): longer than any one call to Slack, the relay or Telegram takes.
    delivery_intent_lease_seconds: float = 120.0
    # How often a consumer partition stopped by repeated failures is tried again.
    stopped_partition_retry_seconds: float = 30.0
    # Set by `switchboard up` on a process it restarted after an exit (shown by /readyz).
    restart_count: int | None = None
    previous_exit: str | None = None

    @field_validator("slack_api_url", "wecom_api_url", "whatsapp_api_url")
    @classmethod
    def _api_paths_are_relative_to_a_folder(cls, url: str) -> str:
        # Method names and API paths are joined onto these URLs; without the slash the last segment is lost.
        return url if url.endswith("/") else f"{url}/"

    def whatsapp_missing(self) -> list[str]:
        """The WhatsApp settings left unset (their environment variable names): the channel is off unless []."""
        values = {
            "VERIFY_TOKEN": self.whatsapp_verify_token,
            "APP_SECRET": self.whatsapp_app_secret,
            "ACCESS_TOKEN": self.whatsapp_access_token,
            "PHONE_NUMBER_ID": self.whatsapp_phone_number_id,
        }
        return [f"SWITCHBOARD_WHATSAPP_{name}" for name, value in values.items() if not value]

    def public_base_url(self) -> str:
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    def secret_values(self) -> tuple[str, ...]:
        """Every configured secret, for the log formatter to blank out wherever it appears."""
        return tuple(value.get_secret_value() for value in vars(self).values() if isinstance(value, SecretStr))

    def with_recorded_infra(self) -> Settings:
        """Fill Kafka/Redis addresses left unset from the stack recorded under DATA_DIR (SPEC §2)."""
        if self.kafka_bootstrap and self.redis_url:
            return self
        recorded = self.data_dir / "infra.json"
        if not recorded.exists():
            return self
        infra = json.loads(recorded.read_text())
        return self.model_copy(
            update={
                "kafka_bootstrap": self.kafka_bootstrap or infra["kafka_bootstrap"],
                "redis_url": self.redis_url or infra["redis_url"],
            }
        )

    def require_infra(self) -> tuple[str, str]:
        settings = self.with_recorded_infra()
        if not settings.kafka_bootstrap or not settings.redis_url:
            raise MissingInfrastructure(
                "No Kafka/Redis address: set SWITCHBOARD_KAFKA_BOOTSTRAP and SWITCHBOARD_REDIS_URL, "
                "or start the local ones with `switchboard infra up`."
            )
        return settings.kafka_bootstrap, settings.redis_url


class MissingInfrastructure(RuntimeError):
    pass


class ChannelOff(RuntimeError):
    """A channel service was started without the credentials it needs; the message says which."""
