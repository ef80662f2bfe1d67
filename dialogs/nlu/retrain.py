"""Train the default classifier in a process of its own: ``python -m dialogs.nlu.retrain OUT``.

A serving process runs it when the team edits the intent examples (dialogs/nlu/live.py), so
scikit-learn's import, memory and CPU never slow a customer's turn. It reads
``{"key": ..., "threshold": ..., "examples": [[intent, text], ...]}`` on standard input,
writes its progress as JSON lines (``{"stage": ..., "progress": 0..1}``) on standard output,
and the trained model to OUT, as plain arrays.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

from dialogs.nlu.local import LocalNLU
from dialogs.nlu.training import Example


def _report(done: int, total: int, stage: str) -> None:
    print(json.dumps({"stage": stage, "progress": done / total if total else 0.0}), flush=True)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dialogs.nlu.retrain OUT < request.json", file=sys.stderr)
        return 2
    request = json.load(sys.stdin)
    with contextlib.suppress(OSError):
        os.nice(10)  # a busy replica serves its customers first
    examples = [Example(str(text), str(intent)) for intent, text in request["examples"]]
    _report(0, 1, "learning")
    nlu = LocalNLU.train(examples, threshold=float(request["threshold"]), progress=_report)
    _report(0, 1, "saving")
    nlu.save(Path(args[0]), trained_on=str(request["key"]))
    _report(1, 1, "saving")
    return 0


if __name__ == "__main__":
    sys.exit(main())
