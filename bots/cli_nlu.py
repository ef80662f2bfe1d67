"""`careline nlu`: train and evaluate the local intent classifier; map a Watson skill."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dialogs.nlu.base import OUT_OF_SCOPE
from dialogs.nlu.local import BACKENDS, DEFAULT_THRESHOLD, LocalNLU
from dialogs.nlu.training import Example, TrainingDataError, import_watson_skill, load_examples
from dialogs.watson_mapping import WATSON_ANSWER, propose_mapping

nlu_app = typer.Typer(help="Train and evaluate the local NLU.", no_args_is_help=True)
console = Console()

BACKEND_HELP = f"Classifier backend: {', '.join(BACKENDS)}."
FINETUNE_HELP = (
    "Tune the sentence encoder on the examples first (embeddings backend, extra "
    "careline[finetune]; a few minutes on CPU). Serving still needs no torch."
)


@nlu_app.command("train")
def train_command(
    data: Path | None = typer.Argument(
        None, help="Training data: CSV (text,category), YAML intents, or a Watson skill .json."
    ),
    out: Path = typer.Option(Path("nlu-model.joblib"), "--out", "-o", help="Where to save."),
    watson_skill: Path | None = typer.Option(
        None, "--watson-skill", help="Train from a Watson Assistant skill (workspace) export."
    ),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, help="Out of scope below this."),
    finetune: bool = typer.Option(False, "--finetune", help=FINETUNE_HELP),
) -> None:
    """Train a classifier and save it."""
    if (data is None) == (watson_skill is None):
        raise typer.BadParameter("give either DATA or --watson-skill FILE")
    examples = _read(watson_skill, skill=True) if watson_skill else _read(data)
    nlu = _train(examples, backend, threshold, finetune=finetune)
    nlu.save(out)
    console.print(
        f"trained [bold]{backend}[/] on {len(examples)} examples, "
        f"{len(nlu.intents)} intents -> {out}"
    )


@nlu_app.command("eval")
def eval_command(
    train: Path = typer.Option(..., "--train", help="Training data (CSV, YAML or skill .json)."),
    test: Path = typer.Option(..., "--test", help="Labelled test data; 'oos' rows allowed."),
    backend: str = typer.Option("local", help=BACKEND_HELP),
    threshold: float = typer.Option(DEFAULT_THRESHOLD, help="Out of scope below this."),
    finetune: bool = typer.Option(False, "--finetune", help=FINETUNE_HELP),
) -> None:
    """Train on TRAIN, classify TEST, and print accuracy, macro-F1 and a per-intent report."""
    from dialogs.nlu.evaluation import evaluate

    examples, tests = _read(train), _read(test)
    nlu = _train(examples, backend, threshold, finetune=finetune)
    result = evaluate(nlu, tests)
    table = Table("intent", "precision", "recall", "F1", "support", title="Per intent")
    for intent, score in sorted(result.per_intent.items()):
        table.add_row(
            intent,
            f"{score.precision:.3f}",
            f"{score.recall:.3f}",
            f"{score.f1:.3f}",
            str(score.support),
        )
    console.print(table)
    console.print(f"test examples: {result.count}")
    console.print(f"accuracy: {result.accuracy:.4f} (out of scope below {threshold})")
    if result.top_accuracy is not None:
        console.print(f"top-intent accuracy: {result.top_accuracy:.4f} (no threshold)")
    console.print(f"macro-F1: {result.macro_f1:.4f}")
    if result.oos_recall is None:
        return
    trained = [e for e in examples if e.intent != OUT_OF_SCOPE]
    if len(trained) == len(examples):
        how = "threshold only: no out-of-scope examples in training"
        console.print(f"out-of-scope recall: {result.oos_recall:.4f} ({how})", soft_wrap=True)
        return
    trained_class = "a trained out-of-scope class"
    console.print(f"out-of-scope recall: {result.oos_recall:.4f} ({trained_class})", soft_wrap=True)
    # What a deployment without out-of-scope examples gets: the same data without them.
    alone = evaluate(_train(trained, backend, threshold, finetune=finetune), tests)
    how = "threshold only: trained without the out-of-scope examples"
    console.print(f"out-of-scope recall: {alone.oos_recall:.4f} ({how})", soft_wrap=True)


@nlu_app.command("import-watson")
def import_watson_command(
    skill: Path = typer.Argument(..., help="A Watson Assistant skill (workspace) export, .json."),
    out: Path = typer.Option(
        Path("watson-mapping.yaml"), "--out", "-o", help="Where to write the mapping."
    ),
) -> None:
    """Write a Watson mapping from a skill export: every intent and client action with a
    guessed Careline target (a person, a ticket, ...) or Watson's own answer. Read it, edit
    it, then point CARELINE_WATSON_MAPPING_FILE at it."""
    try:
        mapping = propose_mapping(skill)
    except (OSError, TrainingDataError) as error:
        raise typer.BadParameter(str(error), param_hint="SKILL") from error
    out.write_text(mapping.to_yaml(), encoding="utf-8")
    flows = Counter(target for target in mapping.intents.values() if target != WATSON_ANSWER)
    console.print(
        f"{len(mapping.intents)} intents, {len(mapping.actions)} client actions -> {out}; "
        f"{sum(flows.values())} lead to a Careline flow "
        f"({', '.join(f'{t} {n}' for t, n in sorted(flows.items())) or 'none'}), "
        "the rest keep Watson's answer"
    )


def _read(path: Path | None, *, skill: bool = False) -> list[Example]:
    assert path is not None
    try:
        return import_watson_skill(path) if skill else load_examples(path)
    except (OSError, TrainingDataError) as error:
        raise typer.BadParameter(str(error)) from error


def _train(
    examples: list[Example], backend: str, threshold: float, *, finetune: bool = False
) -> LocalNLU:
    if backend not in BACKENDS:
        raise typer.BadParameter(BACKEND_HELP, param_hint="--backend")
    tuning = None
    if finetune:
        if backend != "embeddings":
            raise typer.BadParameter(
                "--finetune needs --backend embeddings", param_hint="--finetune"
            )
        from dialogs.nlu.finetune import FineTuning

        tuning = FineTuning()
    columns = (
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("preparing", total=None)

        def progress(done: int, total: int, stage: str) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        try:
            return LocalNLU.train(
                examples, backend=backend, threshold=threshold, progress=progress, finetune=tuning
            )
        except ImportError as error:
            raise typer.BadParameter(str(error), param_hint="--backend") from error
