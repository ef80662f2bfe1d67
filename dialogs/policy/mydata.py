"""The customer's own settings and data: language, calls, phone, export and erasure."""

from __future__ import annotations

from core.contact import CodeCheck, check_code
from core.model import Channel
from dialogs.decisions import (
    ConfirmPhoneCode,
    Context,
    Decision,
    DialogState,
    EraseData,
    ExportData,
    Option,
    RequestPhoneCode,
    Say,
    SetCalls,
    SetLanguage,
    SetTexts,
)
from dialogs.policy.common import Turn, reset, to_idle, with_slots


def language_menu(state: DialogState, ctx: Context) -> Decision:
    """Each language the bot speaks, named in itself."""
    options = tuple(Option(f"lang:{code}", label=name) for code, name in ctx.languages)
    return Decision(reset(state, "language_pick"), (Say("language.ask", {}, options),))


def on_language_pick(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    code = (turn.choice or "").removeprefix("lang:")
    if turn.choice and turn.choice.startswith("lang:") and code in dict(ctx.languages):
        return Decision(reset(state), (Say("language.set"),), (SetLanguage(code),))
    return to_idle(reset(state), turn, ctx)


def calls_menu(state: DialogState, turn: Turn) -> Decision:
    """Calls go to the number the customer texts from: only an SMS conversation has one."""
    if turn.said.channel != Channel.SMS:
        return Decision(state, (Say("calls.no_phone"),))
    options = (Option("calls:on", "calls.accept"), Option("calls:off", "calls.decline"))
    return Decision(reset(state, "calls_pick"), (Say("calls.ask", {}, options),))


def on_calls_pick(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice in ("calls:on", "calls:off"):
        on = turn.choice == "calls:on"
        return Decision(
            reset(state), (Say("calls.enabled" if on else "calls.disabled"),), (SetCalls(on),)
        )
    return to_idle(reset(state), turn, ctx)


def phone_menu(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    """Notices by text to a phone confirmed with a texted code, for customers of other chats."""
    if turn.said.channel == Channel.SMS:
        return Decision(state, (Say("phone.here"),))
    if not ctx.config.texts:
        return Decision(state, (Say("phone.unavailable"),))
    if ctx.customer.phone and ctx.customer.texts:
        options = (Option("phone:stop", "phone.stop"), Option("phone:change", "phone.change"))
        said = Say("phone.current", {"phone": ctx.customer.phone}, options)
        return Decision(reset(state, "phone_menu"), (said,))
    return _ask_phone(state)


def _ask_phone(state: DialogState) -> Decision:
    skip = (Option("skip", "common.skip"),)
    return Decision(reset(state, "phone_number"), (Say("phone.ask", {}, skip),))


def on_phone_menu(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "phone:stop":
        return Decision(reset(state), (Say("phone.stopped"),), (SetTexts(False),))
    if turn.choice == "phone:change":
        return _ask_phone(state)
    return to_idle(reset(state), turn, ctx)


def on_phone_number(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    skip = (Option("skip", "common.skip"),)
    if turn.choice == "skip" or turn.word == "skip":
        return Decision(reset(state), (Say("phone.skipped"),))
    number = e164(turn.text, ctx.config.phone_region, mobile=True)
    if number is None:
        return Decision(state, (Say("phone.invalid", {}, skip),))
    return _send_phone_code(with_slots(state, "phone_code", phone=number), number)


def _send_phone_code(state: DialogState, number: str) -> Decision:
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    said = Say("phone.code_sent", {"phone": number}, options)
    return Decision(state, (said,), (RequestPhoneCode(number),))


def on_phone_code(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    options = (Option("resend", "email.resend"), Option("skip", "common.skip"))
    if turn.choice == "skip" or turn.word == "skip":
        return Decision(reset(state), (Say("phone.skipped"),))
    if turn.choice == "resend" or turn.word == "resend":
        return _send_phone_code(state, str(state.slot("phone")))
    result = check_code(ctx.verification, turn.text, ctx.now)
    if result.check == CodeCheck.VERIFIED:
        said = Say("phone.verified", {"phone": result.email})
        return Decision(reset(state), (said,), (ConfirmPhoneCode(turn.text),))
    if result.check == CodeCheck.WRONG:
        said = Say("email.code_wrong", {"n": result.attempts_left}, options)
        return Decision(state, (said,), (ConfirmPhoneCode(turn.text),))
    if result.check == CodeCheck.EXPIRED:
        return Decision(state, (Say("email.code_expired", {}, options),))
    return _ask_phone(state)


def e164(text: str, region: str, *, mobile: bool = False) -> str | None:
    """A typed phone number in E.164 (`+447700900123`), or None when it is not one (with
    `mobile`, when it is not one that can take texts: a landline, a toll-free number)."""
    import phonenumbers  # 80 ms and 5 MB: only once a number is read, never at start

    try:
        parsed = phonenumbers.parse(text.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    kinds = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
    if mobile and phonenumbers.number_type(parsed) not in kinds:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def data_menu(state: DialogState) -> Decision:
    options = (
        Option("export", "data.export"),
        Option("erase", "data.erase"),
        Option("/cancel", "common.cancel"),
    )
    return Decision(reset(state, "data_menu"), (Say("data.menu", {}, options),))


def on_data_menu(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "export" or turn.word == "export":
        return Decision(reset(state), (), (ExportData(),))
    if turn.choice == "erase" or turn.word == "erase":
        options = (Option("erase_yes", "data.erase_yes"), Option("erase_no", "data.erase_no"))
        return Decision(
            with_slots(state, "erase_confirm"), (Say("data.erase_confirm", {}, options),)
        )
    return to_idle(reset(state), turn, ctx)


def on_erase_confirm(state: DialogState, turn: Turn, ctx: Context) -> Decision:
    if turn.choice == "erase_yes":
        return Decision(DialogState(), (Say("data.erased"),), (EraseData(),))
    return Decision(reset(state), (Say("data.kept"),))
