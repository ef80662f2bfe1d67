"""A fake Bot API whose contract file is missing (`python -m` it): it must not start."""

from tests.fakes.contracts import serve_main
from tests.fakes.telegram_api import FakeTelegram


class TelegramWithoutContract(FakeTelegram):
    contract_files = ("telegram_bot_api_that_is_not_there.json",)


if __name__ == "__main__":
    serve_main(TelegramWithoutContract)
