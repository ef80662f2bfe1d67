"""The channel plugs this build has: the server loops over them and never names one.

A new channel is a package implementing `bots.channels.ChannelPlug` and one `PlugSpec` here.
(Telegram, Slack and the web chat are still wired in bots/server.py; they move here next.)
"""

from __future__ import annotations

from bots.channels import ChannelPlug, PlugSpec
from bots.metrics import Metrics
from core.config import Settings
from core.db.database import Database


def _sms(settings: Settings, db: Database, metrics: Metrics) -> ChannelPlug:
    from bots.sms import build_sms  # twilio is imported only when SMS is on

    return build_sms(settings, db, metrics)


def _sms_banner(settings: Settings, public: str) -> str:
    if settings.sms_enabled:
        return f"on: texts to {public}/twilio/sms (Twilio signature)"
    return "off (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)"


def _sms_secrets(settings: Settings) -> list[str]:
    token = settings.twilio_auth_token
    return [token.get_secret_value()] if token is not None else []


PLUGS: tuple[PlugSpec, ...] = (
    PlugSpec(
        name="sms",
        enabled=lambda settings: settings.sms_enabled,
        build=_sms,
        banner=_sms_banner,
        secrets=_sms_secrets,
    ),
)
