"""Run Stoplight Prism as a mock of a published OpenAPI contract, on a free local port.

Prism answers from the spec's examples and rejects (400/422, ``sl-violations`` header) any
request the spec does not allow, so a test that talks to it fails when our request is wrong.
Install it once with ``scripts/install-prism.sh``.

    prism_watson = prism_fixture(CONTRACTS / "watson_assistant_v2.json")

    def test_something(prism_watson: str) -> None: ...   # the base URL
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.contracts import contracts_dir

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = contracts_dir()
INSTALLED = REPO / ".cache" / "prism" / "node_modules" / ".bin" / "prism"
STARTUP_TIMEOUT = 30.0


def prism_binary() -> Path:
    """``$PRISM_BIN``, the copy installed by scripts/install-prism.sh, or ``prism`` on PATH."""
    explicit = os.environ.get("PRISM_BIN")
    if explicit:
        return Path(explicit)
    if INSTALLED.exists():
        return INSTALLED
    on_path = shutil.which("prism")
    if on_path:
        return Path(on_path)
    raise RuntimeError(
        "Prism is not installed: run scripts/install-prism.sh (needs node and npm), "
        "or set PRISM_BIN to a prism executable"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def running_prism(spec: Path, *, dynamic: bool = False) -> Iterator[str]:
    """Start ``prism mock`` for ``spec`` and yield its base URL; stop it by pid afterwards."""
    if not spec.exists():
        raise FileNotFoundError(f"no contract at {spec}")
    binary = prism_binary()
    for _attempt in range(3):  # the free port may be taken between probe and bind
        port = free_port()
        command = [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)]
        if dynamic:
            command.append("--dynamic")
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            if _wait_until_ready(process, base_url):
                yield base_url
                return
        finally:
            _stop(process)
    raise RuntimeError(f"prism did not start for {spec.name}:\n{_output(process)}")


def prism_fixture(
    spec: Path, *, dynamic: bool = False, scope: Any = "session"
) -> Callable[..., Any]:
    """A pytest fixture yielding the base URL of a Prism mock of ``spec``."""

    @pytest.fixture(scope=scope)
    def mock_server() -> Iterator[str]:
        try:
            binary_ok = prism_binary()
        except RuntimeError as error:
            pytest.fail(str(error))
        assert binary_ok
        with running_prism(spec, dynamic=dynamic) as base_url:
            yield base_url

    return mock_server


def _wait_until_ready(process: subprocess.Popen[str], base_url: str) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            # Any HTTP answer (even 404 for "/") means Prism is serving.
            urllib.request.urlopen(base_url + "/", timeout=1)  # noqa: S310 - local URL
            return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _output(process: subprocess.Popen[str]) -> str:
    if process.stdout is None or process.poll() is None:
        return ""
    return process.stdout.read()[-2000:]
