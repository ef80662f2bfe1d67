"""The channel plugs this build has: the server loops over them and never names one.

A new channel is a package implementing `bots.channels.ChannelPlug` and one `PlugSpec` here.
"""

from __future__ import annotations

from bots.channels import ChannelPlug, PlugBuild, PlugSpec
from core.config import Settings

TELEGRAM_WEBHOOK_PATH = "/telegram/webhook"


def _webchat(build: PlugBuild) -> ChannelPlug:
    from bots.webchat import WebChatPlug

    return WebChatPlug(build)


def _telegram(build: PlugBuild) -> ChannelPlug:
    from bots.telegram import TelegramPlug

    return TelegramPlug(build)


def _telegram_banner(settings: Settings, public: str) -> list[str]:
    if not settings.telegram_enabled:
        return ["off (set TELEGRAM_BOT_TOKEN)"]
    if settings.telegram_mode == "polling":
        return ["polling getUpdates (development)"]
    secret = "secret set" if settings.telegram_webhook_secret else "NO SECRET: calls refused"
    lines = [f"webhook {public}{TELEGRAM_WEBHOOK_PATH} ({secret})"]
    if not settings.public_url:
        lines.append("register: careline telegram set-webhook URL")
    return lines


def _slack(build: PlugBuild) -> ChannelPlug:
    from bots.slack import build_slack

    return build_slack(build.settings, build.db, build.files, build.links)


def _slack_banner(settings: Settings, public: str) -> list[str]:
    return ["on" if settings.slack_enabled else "off (SLACK_BOT_TOKEN, SLACK_SIGNING_SECRET)"]


def _sms(build: PlugBuild) -> ChannelPlug:
    from bots.sms import build_sms  # twilio is imported only when SMS is on

    return build_sms(build.settings, build.db, build.metrics, build.files)


def _sms_banner(settings: Settings, public: str) -> list[str]:
    if settings.sms_enabled:
        return [f"on: texts to {public}/twilio/sms (Twilio signature)"]
    return ["off (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)"]


def _email(build: PlugBuild) -> ChannelPlug:
    from bots.email.plug import EmailPlug

    return EmailPlug(build)


def _email_banner(settings: Settings, public: str) -> list[str]:
    return ["SendGrid" if settings.sendgrid_enabled else "local mailbox (no SENDGRID_API_KEY)"]


PLUGS: tuple[PlugSpec, ...] = (
    PlugSpec(  # the embedded default: always on
        name="web chat",
        enabled=lambda settings: True,
        build=_webchat,
        banner=lambda settings, public: [f"{public}/chat"],
        secrets=(),
    ),
    PlugSpec(
        name="telegram",
        enabled=lambda settings: settings.telegram_enabled,
        build=_telegram,
        banner=_telegram_banner,
        secrets=("telegram_bot_token", "telegram_webhook_secret"),
    ),
    PlugSpec(
        name="slack",
        enabled=lambda settings: settings.slack_enabled,
        build=_slack,
        banner=_slack_banner,
        secrets=(
            "slack_bot_token",
            "slack_signing_secret",
            "slack_app_token",
            "slack_erasure_token",
        ),
    ),
    PlugSpec(
        name="sms",
        enabled=lambda settings: settings.sms_enabled,
        build=_sms,
        banner=_sms_banner,
        secrets=("twilio_auth_token",),
    ),
    PlugSpec(  # the notices' mail: SendGrid, else the local mailbox; always on
        name="email",
        enabled=lambda settings: True,
        build=_email,
        banner=_email_banner,
        secrets=("sendgrid_api_key",),
    ),
)
