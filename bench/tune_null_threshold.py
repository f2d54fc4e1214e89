"""Choose a reader's ``null_threshold``: how far a span must beat "no answer" in ``finetune evaluate``.

On SQuAD v2-style data the reader says "no answer" when its no-answer (CLS) score beats the best span's
score by more than ``null_threshold`` (the rule of the SQuAD v2 reference scripts). A reader trained with
unanswerable examples is not necessarily best at 0; this script reads every question of the given files
once, then scores a sweep of thresholds with the official SQuAD v2 metric and reports the best.

Tune it on your own held-out files, never on the data you report: here, the general dev articles
(``runs/split/squad-dev.json``, 12 SQuAD articles no training step saw) plus their unanswerable twins
made by ``scripts/make_unanswerable.py squad`` (each question paired with its paragraph minus the
answer sentence, or with another paragraph of its article). The bot does not use this threshold: it
decides with its calibrated confidence (``bot.calibration``).

Usage:
    .venv/bin/python scripts/make_unanswerable.py squad runs/split/squad-dev.json \\
        --questions 2488 --out runs/v2/general-dev-neg.json
    .venv/bin/python bench/tune_null_threshold.py --model models/reader \\
        --data runs/split/squad-dev.json --data runs/v2/general-dev-neg.json [--write]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from finetune.evaluation import build_eval_set
from finetune.metrics import squad_scores
from finetune.postprocess import WindowLogits, best_answer, decode_question
from finetune.reader import Reader
from finetune.squad import load_squad
from finetune.types import Reading

THRESHOLDS = tuple(float(t) for t in np.arange(-6.0, 6.01, 0.25))


def read_all(reader: Reader, examples) -> list[Reading]:  # noqa: ANN001
    """One reading per example (its own context), in one batched pass."""
    eval_set = build_eval_set(reader.tokenizer, examples, reader.windows)
    logits = reader.forward(eval_set.windows)
    grouped: list[list[WindowLogits]] = [[] for _ in examples]
    for window, window_logits in zip(eval_set.windows, logits, strict=True):
        grouped[window.example_index].append(window_logits)
    return [
        decode_question([e.context], [w], reader.decode)[0] for e, w in zip(examples, grouped, strict=True)
    ]


def sweep(examples, readings: list[Reading]) -> list[dict[str, float]]:  # noqa: ANN001
    golds = {e.id: [a.text for a in e.answers] for e in examples}
    rows = []
    for t in THRESHOLDS:
        predictions = {e.id: best_answer(r, True, t) for e, r in zip(examples, readings, strict=True)}
        scores = squad_scores(predictions, golds)
        rows.append({"null_threshold": t, **{k: round(v, 2) for k, v in scores.items()}})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, action="append", required=True)
    parser.add_argument("--write", action="store_true", help="save the best threshold in reader_config.json")
    args = parser.parse_args()
    reader = Reader(args.model)
    reader.warm_up()
    examples = load_squad(args.data).examples
    rows = sweep(examples, read_all(reader, examples))
    best = max(rows, key=lambda r: (r["f1"], -abs(r["null_threshold"])))
    for r in rows[::4]:
        print(json.dumps(r))
    print("best:", json.dumps(best))
    if args.write:
        config = dataclasses.replace(reader.config, null_threshold=best["null_threshold"])
        config.save(args.model)
        print(f"wrote null_threshold {best['null_threshold']} into {args.model}/reader_config.json")


if __name__ == "__main__":
    main()
