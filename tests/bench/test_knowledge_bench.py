"""The retrieval benchmark scores what it says: right article, coverage, abstention, on a
threshold chosen without test.csv (a quick run on a slice of the data)."""

from __future__ import annotations

import pytest

from bench import knowledge_bench as kb


def test_scores_count_right_answers_coverage_and_abstentions() -> None:
    asked = [("q1", "a"), ("q2", "a"), ("q3", "b"), ("q4", "gone"), ("q5", "gone")]
    found = [("a", 0.9), ("b", 0.9), ("b", 0.3), ("a", 0.8), ("", 0.0)]
    score = kb.score(found, asked, {"a", "b"}, threshold=0.5)
    assert (score.accuracy, score.coverage, score.abstention) == (1 / 3, 2 / 3, 1 / 2)


def test_a_quick_run_prints_the_table_and_the_latency(capsys: pytest.CaptureFixture[str]) -> None:
    kb.main(["--seeds", "1", "--limit", "200", "--articles", "500"])
    out = capsys.readouterr().out
    assert "67 articles of 10 questions" in out and "200 test questions" in out
    chosen = next(line for line in out.splitlines() if line.startswith("chosen"))
    assert float(chosen.split()[1]) in kb.GRID
    assert "answer latency with 500 articles: p50" in out
