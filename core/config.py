"""Settings, read once at start-up (environment or `.env`) and passed down as values.

Careline's own settings use the `CARELINE_` prefix; each platform keeps the names its own
documentation uses (`TELEGRAM_BOT_TOKEN`, `SLACK_SIGNING_SECRET`, `SENDGRID_API_KEY`, ...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, f"CARELINE_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CARELINE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    # --- core ---
    database_url: str = Field(
        "sqlite+aiosqlite:///./careline.db",
        description="SQLAlchemy URL; `postgresql+asyncpg://user:pass@host/db` in production.",
    )
    db_pool_size: int = Field(10, description="Connections per process (PostgreSQL).")
    sqlite_durable_commits: bool = Field(
        False,
        description="SQLite: sync the log at every commit (synchronous=FULL), so a power cut "
        "loses nothing already answered; off, a crash of the process still loses nothing.",
    )
    auto_migrate: bool = Field(
        True, description="Migrate the database on start (the embedded default)."
    )
    role: Literal["all", "web", "relay"] = Field(
        "all", description="What `careline serve` runs: web, relay, or both."
    )
    host: str = Field("127.0.0.1", description="Address `careline serve` listens on.")
    port: int = Field(8000, description="Port `careline serve` listens on.")
    public_url: str | None = Field(
        None, description="Public base URL (webhooks, file links in Slack and in chats)."
    )
    secret_key: SecretStr | None = Field(
        None,
        description="Signs web-chat tokens, file links and reply addresses; generated and kept "
        "in the database when unset (every replica then shares it).",
    )
    webchat_token_max_age_days: float = Field(
        30,
        description="A web-chat visitor left idle this long starts a new chat (the page "
        "renews its token daily).",
    )
    webchat_allowed_origins: list[str] = Field(
        default_factory=list,
        description='Sites that may embed the web chat, JSON list (["https://shop.example"]); '
        "the server's own origin always may.",
    )
    log_level: str = Field("info", description="Log level.")
    log_json: bool = Field(False, description="Log as JSON lines (set in containers).")
    data_dir: str = Field(
        "./var",
        description="Local files: mailbox and NLU model cache (attachments are kept in the "
        "database).",
    )
    max_text_chars: int = Field(4000, description="Longest customer message accepted.")
    max_upload_bytes: int = Field(20 * 1024 * 1024, description="Largest attachment accepted.")
    file_store: Literal["database", "s3"] = Field(
        "database",
        description="Where attachments' bytes are kept: in the database, or in an "
        "S3-compatible bucket (CARELINE_S3_*; credentials from boto3's usual chain).",
    )
    s3_bucket: str | None = Field(None, description="The bucket (CARELINE_FILE_STORE=s3).")
    s3_prefix: str = Field("careline/files/", description="Key prefix of the files.")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, R2); unset for AWS."
    )
    s3_region: str | None = Field(None, description="The bucket's region.")
    s3_access_key_id: SecretStr | None = Field(
        None, description="Access key; unset: the environment, a shared file or a pod role."
    )
    s3_secret_access_key: SecretStr | None = Field(None, description="Its secret.")
    file_link_minutes: float = Field(
        15, gt=0, description="How long a signed link to a stored file works (admin API)."
    )
    chat_file_link_days: float = Field(
        7,
        gt=0,
        description="How long a file link in a chat message works: a Slack ticket thread, "
        "or a customer's chat that cannot carry the file itself.",
    )

    # --- tickets ---
    sla_hours: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description='SLA per priority, JSON: {"urgent": [first_response_h, resolution_h]}.',
    )
    auto_assign: bool = Field(True, description="Assign new tickets to available agents.")
    auto_close_days: float = Field(7, description="Close resolved tickets after N silent days.")
    retention_days: float = Field(
        30,
        description="Forget handled platform deliveries and sent notices after N days "
        "(parked and dead ones stay for a human; 0 keeps everything).",
    )
    reopen_window_days: float = Field(
        7, description="A resolved ticket reopens when the customer writes within N days."
    )
    categories: list[str] = Field(
        default_factory=lambda: [
            "billing",
            "technical",
            "account",
            "delivery",
            "banking",
            "telecom",
            "product",
            "other",
        ],
        description="Ticket categories offered to customers (any sector), JSON list.",
    )

    # --- NLU ---
    nlu_backend: Literal["auto", "local", "embeddings", "watson"] = Field(
        "auto", description="auto: Watson when configured, else the local classifier."
    )
    nlu_finetune: bool = Field(
        False,
        description="Fine-tune the embeddings backend's encoder on the intents when it trains "
        "(extra careline[finetune]; minutes on CPU, then cached).",
    )
    nlu_threshold: float = Field(0.3, description="Below this confidence: out of scope.")
    nlu_intents_file: str | None = Field(
        None, description="Training data (YAML or CSV); the shipped support intents if unset."
    )
    nlu_faq_file: str | None = Field(None, description="FAQ answers (YAML) keyed by intent.")
    knowledge_min_confidence: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of a question's words an article must cover to be quoted; below "
        "it the bot says it is not sure and offers a ticket or a person.",
    )
    knowledge_refresh_seconds: float = Field(
        2.0, gt=0, description="How often each process checks for published article changes."
    )
    watson_assistant_id: str | None = Field(None, description="Watson Assistant id.")
    watson_environment_id: str | None = Field(None, description="Watson environment id.")
    watson_version: str = Field("2024-08-25", description="Watson API version date.")
    watson_timeout: float = Field(2.0, description="Seconds before falling back to local NLU.")
    watson_min_confidence: float = Field(0.4, description="Below this, fall back to local.")
    watson_mapping_file: str | None = Field(
        None,
        description="YAML mapping the Watson skill's intents and client actions to Careline's "
        "flows (`careline nlu import-watson` writes one); checked at start.",
    )

    # --- email ---
    email_from: str = Field("support@careline.local", description="Sender of notices.")
    email_reply_to: str | None = Field(None, description="Reply-To of notices.")
    mailbox_dir: str | None = Field(
        None, description="Local mailbox when no SendGrid key (default: DATA_DIR/mailbox)."
    )
    sendgrid_api_key: SecretStr | None = Field(
        None, validation_alias=_env("SENDGRID_API_KEY"), description="SendGrid API key."
    )
    sendgrid_api_host: str = Field(
        "https://api.sendgrid.com",
        validation_alias=_env("SENDGRID_API_HOST"),
        description="SendGrid API base URL.",
    )
    sendgrid_webhook_public_key: str | None = Field(
        None,
        validation_alias=_env("SENDGRID_WEBHOOK_PUBLIC_KEY"),
        description="Verifies SendGrid Event Webhook signatures (ECDSA public key).",
    )
    email_reply_domain: str | None = Field(
        None,
        description="Hostname whose MX points at SendGrid Inbound Parse: notices then carry "
        "a Reply-To for their ticket and customers' replies reach it "
        "(POST /sendgrid/inbound).",
    )
    sendgrid_inbound_public_key: str | None = Field(
        None,
        validation_alias=_env("SENDGRID_INBOUND_PUBLIC_KEY"),
        description="Verifies signed Inbound Parse requests (the security policy's public key).",
    )

    # --- Telegram ---
    telegram_bot_token: SecretStr | None = Field(
        None, validation_alias=_env("TELEGRAM_BOT_TOKEN"), description="Bot token (BotFather)."
    )
    telegram_webhook_secret: SecretStr | None = Field(
        None,
        validation_alias=_env("TELEGRAM_WEBHOOK_SECRET"),
        description="Secret token Telegram sends with every webhook call.",
    )
    telegram_mode: Literal["webhook", "polling"] = Field(
        "webhook", validation_alias=_env("TELEGRAM_MODE"), description="webhook or polling."
    )
    telegram_api_base_url: str = Field(
        "https://api.telegram.org/bot",
        validation_alias=_env("TELEGRAM_API_BASE_URL"),
        description="Bot API base URL (python-telegram-bot's base_url).",
    )

    # --- Slack ---
    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_BOT_TOKEN"), description="Bot token (xoxb-...)."
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_SIGNING_SECRET"), description="Signing secret."
    )
    slack_erasure_token: SecretStr | None = Field(
        None,
        validation_alias=_env("SLACK_ERASURE_TOKEN"),
        description="A workspace admin's user token (xoxp-, scopes chat:write and files:write):"
        " erasure then also deletes what agents typed and shared in the customer's threads.",
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=_env("SLACK_APP_TOKEN"), description="App token for Socket Mode."
    )
    slack_api_url: str = Field(
        "https://slack.com/api/",
        validation_alias=_env("SLACK_API_URL"),
        description="Slack Web API base URL.",
    )
    slack_support_channel: str | None = Field(
        None, description="Default channel id where new tickets are posted."
    )
    slack_routing: dict[str, str] = Field(
        default_factory=dict, description='Category -> channel id, JSON: {"billing": "C123"}.'
    )

    # --- Twilio: SMS and calls (on when the account SID, the token and a sender are set) ---
    twilio_account_sid: str | None = Field(
        None, validation_alias=_env("TWILIO_ACCOUNT_SID"), description="Account SID (AC...)."
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        validation_alias=_env("TWILIO_AUTH_TOKEN"),
        description="Auth token: the API's password and the key of webhook signatures.",
    )
    twilio_from_number: str | None = Field(
        None,
        validation_alias=_env("TWILIO_FROM_NUMBER"),
        description="The support number texts and calls come from (E.164).",
    )
    twilio_messaging_service_sid: str | None = Field(
        None,
        validation_alias=_env("TWILIO_MESSAGING_SERVICE_SID"),
        description="Send texts through this Messaging Service (MG...) instead of one number.",
    )
    twilio_api_base_url: str = Field(
        "https://api.twilio.com",
        validation_alias=_env("TWILIO_API_BASE_URL"),
        description="Twilio REST API base URL (a local fake in tests).",
    )
    sms_per_second: float = Field(
        1.0, description="Texts a second from the support number (a long code: about 1)."
    )
    sms_max_segments: int = Field(
        4, description="SMS segments one text may take; a longer reply goes as several texts."
    )
    sms_region: str = Field(
        "US", description="Region of phone numbers typed without a country code (ISO 3166)."
    )
    call_quiet_hours: str = Field(
        "21-8",
        description="Hours (UTC, start-end) when no notice call is made; the text still goes.",
    )

    # --- relay ---
    relay_batch: int = Field(50, description="Outbox rows a relay claims at once.")
    relay_poll_seconds: float = Field(0.2, description="Outbox poll interval (SQLite).")
    relay_max_attempts: int = Field(12, description="Attempts before a notice is dead-lettered.")

    # --- rate limits: past one, 429 with Retry-After; 0 turns it off ---
    api_requests_per_minute: int = Field(
        600, description="Admin API requests a minute per key (0: no limit)."
    )
    api_failed_keys_per_minute: int = Field(
        10,
        description="Invalid admin API keys a minute per client address, then 429 for invalid "
        "keys only: a valid key is never refused for them.",
    )
    console_session_idle_hours: float = Field(
        12, gt=0, description="A console session unused this long ends (sign in again)."
    )
    console_session_days: float = Field(
        7, gt=0, description="A console session ends this long after sign-in, used or not."
    )
    console_invitation_days: float = Field(
        3, gt=0, description="How long a console invitation's link works."
    )
    console_sign_ins_per_quarter_hour: int = Field(
        10,
        description="Console sign-in attempts per client address, and per account, in 15 "
        "minutes; past that every attempt waits (429), even with the right password.",
    )
    webchat_messages_per_minute: int = Field(
        20, description="Web-chat messages a minute per visitor (0: no limit)."
    )
    webchat_address_messages_per_minute: int = Field(
        120, description="Web-chat messages a minute per client address, all its visitors."
    )
    webchat_sessions_per_10_minutes: int = Field(
        30, description="New web-chat visitors per client address in 10 minutes."
    )
    webchat_uploads_per_10_minutes: int = Field(
        10, description="Web-chat uploads per visitor in 10 minutes."
    )

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None

    @property
    def sms_enabled(self) -> bool:
        return (
            self.twilio_account_sid is not None
            and self.twilio_auth_token is not None
            and (
                self.twilio_from_number is not None or self.twilio_messaging_service_sid is not None
            )
        )

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and self.slack_signing_secret is not None

    @property
    def sendgrid_enabled(self) -> bool:
        return self.sendgrid_api_key is not None

    # --- Server + Telegram area (added by the Server/Telegram engineer; lead: move at will) ---
    telegram_max_attempts: int = Field(
        8, description="Deliveries of one update before it is parked (Telegram retries on 5xx)."
    )
    telegram_reply_in_webhook_answer: bool = Field(
        True, description="Send a turn's last reply in the webhook's answer (one round trip less)."
    )
    telegram_overall_per_second: float = Field(
        29,
        description="Outbound Bot API messages per second, all chats of the bot together, "
        "across every process on PostgreSQL (Telegram allows about 30; 29 leaves room for "
        "network jitter).",
    )
    telegram_chat_per_second: float = Field(
        1, description="Outbound messages per second to one private chat (bursts of 3)."
    )
    shutdown_grace_seconds: float = Field(
        30, description="On SIGTERM, how long in-flight work may take to finish."
    )
