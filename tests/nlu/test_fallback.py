"""FallbackNLU: Watson (real SDK against Prism, or a dead or slow server) with local backup."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ibm_cloud_sdk_core.authenticators import BearerTokenAuthenticator
from ibm_watson import AssistantV2

from dialogs.nlu import OUT_OF_SCOPE, FallbackNLU, LocalNLU, Parse
from dialogs.nlu.watson import WatsonNLU
from tests.fakes.prism import free_port


def watson_at(base_url: str, *, http_timeout: float | None = None) -> WatsonNLU:
    client = AssistantV2(version="2024-08-25", authenticator=BearerTokenAuthenticator("t"))
    client.set_service_url(base_url)
    if http_timeout:
        client.set_http_config({"timeout": http_timeout})
    return WatsonNLU(client, assistant_id="a", environment_id="e")


class SlowHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        time.sleep(1.5)
        body = b'{"output": {"intents": [{"intent": "hello", "confidence": 0.99}]}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def slow_watson_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_confident_watson_answer_is_kept(watson_mock: str, support_nlu: LocalNLU) -> None:
    # Prism's first answer can take seconds (it compiles the spec): not what this tests.
    nlu = FallbackNLU(watson_at(watson_mock), support_nlu, min_confidence=0.5, timeout=20)

    parse = await nlu.parse("I forgot my password")

    assert parse.source == "watson"  # Prism's example answer: "hello" at 0.93


async def test_unsure_watson_falls_back_to_local(watson_mock: str, support_nlu: LocalNLU) -> None:
    nlu = FallbackNLU(watson_at(watson_mock), support_nlu, min_confidence=0.95, timeout=20)

    parse = await nlu.parse("I forgot my password")

    assert parse.source == "local"
    assert parse.intent == "faq_reset_password"


async def test_watson_down_falls_back_to_local(support_nlu: LocalNLU) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    nlu = FallbackNLU(watson_at(nothing_listens), support_nlu)

    parse = await nlu.parse("talk to a human")

    assert parse.source == "local"
    assert parse.intent == "human"


async def test_slow_watson_falls_back_within_the_timeout(
    slow_watson_url: str, support_nlu: LocalNLU
) -> None:
    nlu = FallbackNLU(watson_at(slow_watson_url, http_timeout=3), support_nlu, timeout=0.3)

    started = time.perf_counter()
    parse = await nlu.parse("what are your opening hours")

    assert time.perf_counter() - started < 1.0
    assert parse.source == "local"
    assert parse.intent == "faq_opening_hours"


class FixedNLU:
    def __init__(self, parse: Parse) -> None:
        self.answer = parse

    async def parse(self, text: str) -> Parse:
        return self.answer


async def test_keeps_unsure_primary_when_fallback_knows_no_better() -> None:
    unsure = Parse("greet", 0.2, source="watson", answer="Hi!")
    nlu = FallbackNLU(FixedNLU(unsure), FixedNLU(Parse(OUT_OF_SCOPE, 0.1)))

    assert await nlu.parse("hmm") == unsure
