"""The human-readable parts of a model directory: the training curve picture and the model card."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

CURVE_SIZE_INCHES = (8, 3.5)
CURVE_DPI = 100


def write_training_curve(history: Sequence[dict[str, Any]], path: Path) -> None:
    """Plot training loss and dev F1 by epoch to a PNG.

    Args:
        history: ``epoch_history`` entries (``epoch``, ``train_loss``, ``f1``).
        path: the PNG to write.
    """
    import matplotlib  # noqa: PLC0415 - imported late: only training draws pictures

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt  # noqa: PLC0415

    epochs = [h["epoch"] for h in history]
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=CURVE_SIZE_INCHES)
    try:
        losses = [
            (e, h["train_loss"]) for e, h in zip(epochs, history, strict=True) if h["train_loss"] is not None
        ]
        loss_axis.plot([e for e, _ in losses], [v for _, v in losses], marker="o")
        loss_axis.set(title="training loss", xlabel="epoch", ylabel="loss")
        f1_axis.plot(epochs, [h["f1"] for h in history], marker="o", color="tab:green")
        f1_axis.set(title="dev F1", xlabel="epoch", ylabel="F1 (%)")
        for axis in (loss_axis, f1_axis):
            axis.grid(alpha=0.3)
        figure.tight_layout()
        figure.savefig(path, dpi=CURVE_DPI)
    finally:
        plt.close(figure)


def model_card(metrics: dict[str, Any]) -> str:
    """A short Markdown model card: base model, data, settings, dev scores, time and hardware.

    Args:
        metrics: the contents of ``metrics.json``.

    Returns:
        The card's Markdown text.
    """
    settings = metrics["settings"]
    best = metrics["best_dev"]
    rows = "\n".join(
        f"| {h['epoch']} | {h['train_loss']} | {h['exact_match']} | {h['f1']} |" for h in metrics["history"]
    )
    data = "\n".join(f"- `{name}`" for name in metrics["data_files"])
    dev = settings["dev"] or f"{settings['dev_fraction']:.0%} of the training contexts, held out by paragraph"
    options = ", ".join(f"{k}={v}" for k, v in settings.items() if k not in ("data", "output", "dev"))
    return f"""# Extractive QA reader

Fine-tuned from `{settings["base_model"]}` with `finetune train` (transformers Trainer) for SQuAD-style
extractive question answering: given a question and a passage, it marks the answer span in the passage.

## Data
{data}

Training questions: {metrics["train_examples"]} ({metrics["train_features"]} windows);
dev: {dev}, {metrics["dev_examples"]} questions. Repaired answer offsets: {metrics["repaired"]};
rejected questions: {metrics["rejected"]}.

## Results (dev set, official SQuAD metric)
Best epoch: exact match **{best["exact_match"]:.2f}**, F1 **{best["f1"]:.2f}**.

| epoch | train loss | EM | F1 |
|---|---|---|---|
{rows}

## Training
{metrics["seconds"]:.0f} s on {metrics["hardware"]}, precision {metrics["precision"]}, epochs run
{metrics["epochs"]}.

Settings: {options}.

Use it with `finetune predict --model DIR ...` or `finetune.reader.Reader(DIR)`.
"""


def write_model_card(metrics: dict[str, Any], path: Path) -> None:
    """Write ``model_card(metrics)`` to ``path``."""
    path.write_text(model_card(metrics))
