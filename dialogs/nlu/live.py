"""The local classifier, kept at the intent examples the team edits (core/intents.py).

Each process serves one model and follows the examples' revision every few seconds, like the
knowledge base (dialogs/knowledge.py). With no edits it serves the model of the intents file
(shipped trained). When the examples change, the model of the new examples is trained once
for the whole cluster: the replica that takes the training lease runs
``python -m dialogs.nlu.retrain`` in a process of its own (scikit-learn never runs beside
the turns), reports its progress in the database, and stores the model there as plain
arrays; every replica then loads it by the key of its examples. Turns are answered by the
previous model until then. A replica that dies while training loses its lease, and another
takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from core.db.database import Database
from core.db.intents import (
    TrainedModel,
    claim_training,
    fail_training,
    finish_training,
    read_edits,
    read_model,
    read_state,
    report_training,
)
from core.intents import LabelledText, apply_edits, clean_text
from core.model import utcnow
from dialogs.following import refresh_every
from dialogs.nlu.base import Parse
from dialogs.nlu.local import LocalNLU, model_key
from dialogs.nlu.training import load_examples

log = logging.getLogger("careline.nlu")


def base_examples(intents_file: str | Path | None) -> tuple[LabelledText, ...]:
    """The intents file's examples (the shipped one when None), spaced as edits are; read
    once per process and file (the engine and the admin API share them)."""
    from dialogs.data import INTENTS_FILE

    return _read_examples(str(Path(intents_file or INTENTS_FILE).resolve()))


@functools.lru_cache(maxsize=4)
def _read_examples(path: str) -> tuple[LabelledText, ...]:
    return tuple(
        LabelledText(example.intent, clean_text(example.text)) for example in load_examples(path)
    )


def examples_key(examples: Sequence[LabelledText]) -> str:
    """What a model trained on `examples` is stored under (their order does not matter)."""
    pairs = sorted((example.intent, example.text) for example in examples)
    return model_key(json.dumps(pairs, ensure_ascii=False).encode(), "local", False)


class LiveIntents:
    """The NLU every turn asks: the newest model of the examples this process has loaded."""

    #: The training process: it is given the model's path, the request on standard input.
    trainer: tuple[str, ...] = (sys.executable, "-m", "dialogs.nlu.retrain")

    def __init__(
        self,
        db: Database,
        base: LocalNLU,
        *,
        intents_file: str | Path | None = None,
        refresh_seconds: float = 2.0,
        lease_seconds: float = 60.0,
        name: str | None = None,
    ) -> None:
        self.db = db
        self.base = base
        self.current = base
        self.intents_file = intents_file
        self.refresh_seconds = refresh_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.name = name or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.key: str | None = None  # None: the intents file's own model
        self.revision = -1
        # The examples of the revision read last, while their model is not stored yet: a
        # replica waiting for another's training (or one that failed) reads one row a tick.
        self._waiting: tuple[int, str, list[LabelledText]] | None = None
        self._training: asyncio.Task[None] | None = None
        self._refreshing = asyncio.Lock()

    async def parse(self, text: str) -> Parse:
        return await self.current.parse(text)

    async def start(self) -> None:
        """Serve the model of the current examples from the first turn when it is stored."""
        await self.refresh()

    async def refresh(self) -> bool:
        """Load the model of the current examples (train it if nobody has); True if the
        model changed."""
        async with self._refreshing:
            state = await read_state(self.db)
            if state.revision == self.revision:
                return False
            if self._waiting is not None and self._waiting[0] == state.revision:
                revision, key, examples = self._waiting
            else:
                revision, edits = await read_edits(self.db)
                if not edits:
                    return self._serve(None, self.base, revision)
                examples = apply_edits(base_examples(self.intents_file), edits)
                key = examples_key(examples)
                if key == self.key:
                    self.revision = revision
                    return False
                self._waiting = (revision, key, examples)
            stored = await read_model(self.db, key)
            if stored is not None:
                model = await asyncio.to_thread(
                    LocalNLU.from_arrays, stored.model, threshold=self.base.threshold
                )
                return self._serve(key, model, revision)
            if state.failed_key == key:
                return False  # reported; tried again when the examples change
            if self._training is None or self._training.done():
                claimed = await claim_training(
                    self.db, key, revision=revision, by=self.name, now=utcnow(), lease=self.lease
                )
                if claimed:
                    self._training = asyncio.create_task(
                        self._train(key, examples), name="nlu-training"
                    )
            return False  # answered by the model it has until the new one is stored

    async def follow(self, stopping: asyncio.Event) -> None:
        """Keep the model current until `stopping` is set (one background task a process)."""
        try:
            await refresh_every(self.refresh_seconds, stopping, self.refresh, "NLU examples")
        finally:
            if self._training is not None:
                self._training.cancel()
                await asyncio.gather(self._training, return_exceptions=True)

    def _serve(self, key: str | None, model: LocalNLU, revision: int) -> bool:
        changed = key != self.key
        self.current, self.key, self.revision = model, key, revision
        self._waiting = None
        if changed:
            log.info("NLU: serving the model of revision %d (%s)", revision, key or "file")
        return changed

    async def _train(self, key: str, examples: Sequence[LabelledText]) -> None:
        """Train `key` in a child process, reporting progress and renewing the lease; store
        the model, then serve it."""
        started = time.monotonic()
        log.info("NLU: training on %d examples (%s)", len(examples), key)
        try:
            with tempfile.TemporaryDirectory(prefix="careline-nlu-") as folder:
                out = Path(folder) / "model.npz"
                if not await self._run_trainer(key, examples, out):
                    return  # the lease went to newer examples or another replica
                data = out.read_bytes()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("NLU: training of %s failed (%s)", key, type(exc).__name__)
            with contextlib.suppress(Exception):
                await fail_training(self.db, key, by=self.name, error=str(exc), now=utcnow())
            return
        model = TrainedModel(
            key=key,
            backend="local",
            model=data,
            examples=len(examples),
            intents=len({example.intent for example in examples}),
            seconds=round(time.monotonic() - started, 3),
            trained_at=utcnow(),
        )
        await finish_training(self.db, model, by=self.name)
        log.info("NLU: trained %s in %.1f s", key, model.seconds)
        self.revision = -1  # load it now rather than at the next tick
        await self.refresh()

    async def _run_trainer(self, key: str, examples: Sequence[LabelledText], out: Path) -> bool:
        request = {
            "key": key,
            "threshold": self.base.threshold,
            "examples": [[example.intent, example.text] for example in examples],
        }
        child = await asyncio.create_subprocess_exec(
            *self.trainer,
            str(out),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert child.stdin is not None and child.stdout is not None  # piped above
        child.stdin.write(json.dumps(request).encode())
        child.stdin.close()
        errors = asyncio.create_task(child.stderr.read() if child.stderr else _nothing())
        try:
            stage, progress, renewed = "starting", 0.0, 0.0
            while True:
                try:
                    line = await asyncio.wait_for(child.stdout.readline(), self._renew_every)
                except TimeoutError:
                    line = None
                if line == b"":
                    break
                if line:
                    report = json.loads(line)
                    stage, progress = str(report["stage"]), float(report["progress"])
                if line is None or time.monotonic() - renewed >= 1.0:
                    renewed = time.monotonic()
                    kept = await report_training(
                        self.db,
                        key,
                        by=self.name,
                        stage=stage,
                        progress=progress,
                        now=utcnow(),
                        lease=self.lease,
                    )
                    if not kept:
                        log.info("NLU: training of %s handed over; stopping it", key)
                        return False
            code = await child.wait()
            if code != 0:
                said = (await errors).decode(errors="replace").strip()[-2000:]
                ended = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
                raise TrainingFailed(f"the trainer ended with {ended}: {said}".rstrip(": "))
            return True
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
            errors.cancel()

    @property
    def _renew_every(self) -> float:
        return max(0.5, self.lease.total_seconds() / 4)


class TrainingFailed(RuntimeError):
    """The training process did not write a model."""


async def _nothing() -> bytes:
    return b""
