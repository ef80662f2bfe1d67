"""The composition of the NLU from settings: local by default, Watson behind a fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import Settings
from dialogs.factory import build_nlu
from dialogs.nlu import FallbackNLU, LocalNLU


def settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(_env_file=None, data_dir=str(tmp_path), **kw)  # type: ignore[call-arg,arg-type]


def test_auto_without_watson_settings_is_the_local_classifier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("ASSISTANT_URL", raising=False)
    with caplog.at_level("INFO", logger="careline.dialogs"):
        nlu = build_nlu(settings(tmp_path))
    assert isinstance(nlu, LocalNLU)
    assert not (tmp_path / "nlu").exists(), "the shipped model is served: nothing is trained"
    assert "NLU: the local classifier (TF-IDF)" in caplog.messages


def test_auto_with_watson_configured_puts_watson_first_with_a_local_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSISTANT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("ASSISTANT_AUTH_TYPE", "noauth")
    nlu = build_nlu(
        settings(tmp_path, watson_assistant_id="a1", watson_environment_id="e1", watson_timeout=1.5)
    )
    assert isinstance(nlu, FallbackNLU)
    assert isinstance(nlu.fallback, LocalNLU)
    assert nlu.timeout == 1.5


def test_watson_backend_without_ids_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WATSON_ASSISTANT_ID"):
        build_nlu(settings(tmp_path, nlu_backend="watson"))


def test_fine_tuning_without_the_embeddings_backend_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="embeddings backend"):
        build_nlu(settings(tmp_path, nlu_backend="local", nlu_finetune=True))
