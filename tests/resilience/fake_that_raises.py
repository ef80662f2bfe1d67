"""A fake Bot API with a bug in its sendMessage (`python -m` it): every send raises inside."""

from typing import Any

from tests.fakes.contracts import serve_main
from tests.fakes.telegram_api import FakeTelegram


class TelegramThatRaises(FakeTelegram):
    async def _answer(self, name: str, params: dict[str, Any]) -> Any:
        if name == "sendMessage":
            raise KeyError("the fake's own bug")
        return await super()._answer(name, params)


if __name__ == "__main__":
    serve_main(TelegramThatRaises)
