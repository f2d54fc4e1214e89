"""Tune the answer engine and fit its calibrated confidence on the diabetes dev questions.

Every question of ``data/diabetes-qa/dev.json`` (SQuAD v2: 433 questions over 19 documents no training
step saw, ~13% unanswerable) is asked open-domain against an index of the bundled documents, exactly as
``bot ask`` asks it: ``AnswerEngine.gather`` retrieves (hybrid) and reads the top ``K_MAX`` passages
once per question; every setting is then scored offline with the engine's own pure functions
(``bot.fusion.rank_candidates``) on the first k passages (a passage's reading does not depend on the
passages read with it).

For each k (passages read):

- every candidate (each passage's best span) is "right" when its token F1 with a gold answer is >= 0.5
  (never, for an unanswerable question);
- the confidence model (``bot.calibration``, logistic regression over all candidates) is fitted with
  5-fold cross-validation *by document*, so every candidate's probability comes from a model that never
  saw its document; each question is answered with its likeliest candidate, as the engine does;
- the threshold is the lowest one whose out-of-fold answers are >= 80% right (``--target-precision``, default
  ``bot.calibration.DEFAULT_TARGET_PRECISION``).

The figures reported per setting are these out-of-fold ones: share of answerable questions answered
right, precision of the answers, share of unanswerable questions declined. The choice of setting is made
on the same questions, so ``held_out`` repeats the whole procedure (choose the setting, fit, pick the
threshold) on half of the documents and scores the other half, both ways round.

``--write-calibration`` fits the chosen setting's model on all dev questions and writes it as
``calibration.json`` into the model directory (the engine loads it with the model).

Usage:
    .venv/bin/python bench/tune_engine.py [--model models/reader] [--index var/tune/index] [--json]
    .venv/bin/python bench/tune_engine.py --write-calibration   # writes models/reader/calibration.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bot.calibration import (
    DEFAULT_TARGET_PRECISION,
    FEATURES,
    RIGHT_F1,
    Calibration,
    Coverage,
    Outcome,
    best_per_question,
    coverage_at,
    fit,
    out_of_fold,
    threshold_for_precision,
)
from bot.config import SHIPPED_MODEL_DIR, Settings
from bot.engine import AnswerEngine
from bot.fusion import rank_candidates
from finetune.metrics import exact_match, f1
from finetune.squad import SquadExample, load_squad
from finetune.types import Reading
from retrieval import ScoredPassage, SentenceEncoder, build_index

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "data" / "docs"
QA_DIR = ROOT / "data" / "diabetes-qa"

K_VALUES = (1, 3, 5, 8)
K_MAX = max(K_VALUES)
# Precisions for the risk-coverage table.
PRECISIONS = (0.95, 0.9, 0.85, 0.8, 0.75)


@dataclass(frozen=True)
class Observed:
    """One question's cached evidence: gold answers and the top K_MAX passages with their readings."""

    id: str
    document: str
    golds: tuple[str, ...]
    retrieved: tuple[ScoredPassage, ...]
    readings: tuple[Reading, ...]


@dataclass(frozen=True)
class SettingScore:
    """One setting's out-of-fold figures."""

    k: int
    threshold: float
    coverage: Coverage
    right_answering_all: float  # share of answerable questions right if the engine never declined


def is_right(text: str, golds: Sequence[str]) -> bool:
    return bool(golds) and max(f1(text, g) for g in golds) >= RIGHT_F1


def outcomes(observed: Sequence[Observed], k: int) -> list[tuple[Outcome, str]]:
    """Every candidate (one per passage with a span) of every question at k, with its text."""
    result = []
    for q in observed:
        candidates = rank_candidates(q.retrieved[:k], q.readings[:k], retrieval_weight=0.0)
        if not candidates:  # nothing read: the engine declines; one featureless, unsure candidate
            features = dict.fromkeys(FEATURES, 0.0)
            result.append((Outcome(q.id, q.document, bool(q.golds), False, features), ""))
        for c in candidates:
            right = is_right(c.span.text, q.golds)
            result.append((Outcome(q.id, q.document, bool(q.golds), right, c.features), c.span.text))
    return result


def score_setting(observed: Sequence[Observed], k: int, target: float) -> SettingScore:
    outs = [o for o, _ in outcomes(observed, k)]
    chosen, probabilities = best_per_question(outs, out_of_fold(outs))
    threshold = threshold_for_precision(probabilities, chosen, target)
    answerable = sum(o.answerable for o in chosen) or 1
    return SettingScore(
        k, threshold, coverage_at(probabilities, chosen, threshold), sum(o.right for o in chosen) / answerable
    )


def grid(observed: Sequence[Observed], target: float) -> list[SettingScore]:
    return [score_setting(observed, k, target) for k in K_VALUES]


def choose(scores: Sequence[SettingScore]) -> SettingScore:
    """Most answerable questions answered right at the target precision; ties (one question's worth):
    fewer passages read (faster)."""
    top = max(s.coverage.right for s in scores)
    tie = 1.0 / 100  # about one question of ~380 answerable ones
    return min((s for s in scores if s.coverage.right >= top - tie), key=lambda s: s.k)


def risk_coverage(observed: Sequence[Observed], k: int) -> list[Coverage]:
    """Out-of-fold figures at the thresholds that reach each precision in PRECISIONS, and answering all."""
    outs = [o for o, _ in outcomes(observed, k)]
    chosen, probabilities = best_per_question(outs, out_of_fold(outs))
    rows = [
        coverage_at(probabilities, chosen, threshold_for_precision(probabilities, chosen, p))
        for p in PRECISIONS
    ]
    return [*rows, coverage_at(probabilities, chosen, 0.0)]


def _fit(observed: Sequence[Observed], k: int, target: float, fitted_on: str = "") -> Calibration:
    outs = [o for o, _ in outcomes(observed, k)]
    return fit(outs, top_k=k, retrieval_weight=0.0, target_precision=target, fitted_on=fitted_on)


def _answers(
    observed: Sequence[Observed], k: int, calibration: Calibration
) -> list[tuple[Outcome, str, bool]]:
    """Each question's chosen candidate under ``calibration``: (outcome, text, answered)."""
    pairs = outcomes(observed, k)
    probabilities = [calibration.probability(o.features) for o, _ in pairs]
    best: dict[str, tuple[Outcome, str, float]] = {}
    for (o, text), p in zip(pairs, probabilities, strict=True):
        if o.question_id not in best or p > best[o.question_id][2]:
            best[o.question_id] = (o, text, p)
    return [(o, text, p >= calibration.threshold) for o, text, p in best.values()]


def held_out(observed: Sequence[Observed], target: float, folds: int = 2) -> dict[str, float]:
    """The whole procedure on half the documents, scored on the other half (pooled over both halves)."""
    documents = sorted({q.document for q in observed})
    fold_of = {doc: i % folds for i, doc in enumerate(documents)}
    right = answered = answerable = declined = unanswerable = 0
    for fold in range(folds):
        tune_part = [q for q in observed if fold_of[q.document] != fold]
        test_part = [q for q in observed if fold_of[q.document] == fold]
        chosen = choose(grid(tune_part, target))
        for outcome, _, answers in _answers(test_part, chosen.k, _fit(tune_part, chosen.k, target)):
            answered += answers
            right += answers and outcome.right
            answerable += outcome.answerable
            unanswerable += not outcome.answerable
            declined += not answers and not outcome.answerable
    return {
        "right": right / max(answerable, 1),
        "precision": right / answered if answered else 1.0,
        "declined_unanswerable": declined / max(unanswerable, 1),
        "folds": folds,
    }


def squad_style(observed: Sequence[Observed], k: int, calibration: Calibration) -> dict[str, float]:
    """EM/F1 (SQuAD v2 style: a declined unanswerable question scores 1) with in-sample confidence."""
    golds_of = {q.id: q.golds for q in observed}
    em = f1_total = 0.0
    for outcome, text, answers in _answers(observed, k, calibration):
        given = text if answers else ""
        golds = golds_of[outcome.question_id] or ("",)
        em += max(exact_match(given, g) for g in golds)
        f1_total += max(f1(given, g) for g in golds)
    return {"exact_match": 100 * em / len(observed), "f1": 100 * f1_total / len(observed)}


def observe(engine: AnswerEngine, examples: Sequence[SquadExample]) -> list[Observed]:
    """Retrieve and read the top K_MAX passages of every question once (the slow part)."""
    observed = []
    started = time.perf_counter()
    for n, example in enumerate(examples, 1):
        evidence = engine.gather(example.question, K_MAX)
        golds = tuple(a.text for a in example.answers)
        observed.append(Observed(example.id, example.title, golds, evidence.retrieved, evidence.readings))
        if n % 50 == 0:
            print(
                f"  read {n}/{len(examples)} questions, {time.perf_counter() - started:.0f} s",
                file=sys.stderr,
            )
    return observed


def read_all(model: Path, index: Path | None, limit: int | None) -> tuple[list[Observed], float]:
    """Index the bundled documents (unless --index names a built one) and read every dev question."""
    examples = load_squad([QA_DIR / "dev.json"]).examples[:limit]
    with tempfile.TemporaryDirectory(prefix="tune-engine-") as tmp:
        index_dir = index or Path(tmp) / "index"
        if index is None:
            build_index(DOCS, index_dir, encoder=SentenceEncoder())
        settings = Settings(_env_file=None, index_dir=index_dir, model_dir=model)
        engine = AnswerEngine.from_settings(settings)
        engine.warm_up()
        print(f"reading {len(examples)} dev questions x {K_MAX} passages...", file=sys.stderr)
        started = time.perf_counter()
        observed = observe(engine, examples)
    return observed, time.perf_counter() - started


def print_report(report: dict) -> None:
    n, seconds, load = report["questions"], report["read_seconds"], report["loadavg"]
    print(f"{n} dev questions read in {seconds:.0f} s (load average {load:.1f})")
    print(f"out of fold, by document; threshold for {report['target_precision']:.0%} precision:")
    print(f"  {'k':>2} {'thresh':>6} {'right':>6} {'prec':>6} {'declined':>8} {'right@all':>9}")
    for s in report["grid"]:
        c = s["coverage"]
        chosen = s["k"] == report["chosen"]["k"]
        print(
            f"  {s['k']:>2} {s['threshold']:>6.3f} {c['right']:>6.1%} "
            f"{c['precision']:>6.1%} {c['declined_unanswerable']:>8.1%} {s['right_answering_all']:>9.1%}"
            + ("  <- chosen" if chosen else "")
        )
    print("risk-coverage of the chosen setting (out of fold):")
    print(f"  {'threshold':>9} {'answered':>8} {'right':>6} {'precision':>9} {'declined':>8}")
    for c in report["risk_coverage"]:
        print(
            f"  {c['threshold']:>9.3f} {c['answered']:>8.1%} {c['right']:>6.1%} {c['precision']:>9.1%} "
            f"{c['declined_unanswerable']:>8.1%}"
        )
    h = report["held_out"]
    print(
        f"held out ({h['folds']}-fold by document, setting and threshold chosen on the other half): "
        f"right {h['right']:.1%}, precision {h['precision']:.1%}, "
        f"unanswerable declined {h['declined_unanswerable']:.1%}"
    )
    s = report["squad_style"]
    print(f"SQuAD v2-style EM {s['exact_match']:.1f} / F1 {s['f1']:.1f} (in-sample confidence)")
    if report.get("written"):
        print(f"wrote {report['written']}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL_DIR, help="the reader to tune for")
    parser.add_argument("--index", type=Path, default=None, help="a built hybrid index of data/docs")
    parser.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION)
    parser.add_argument("--limit", type=int, default=None, help="first N questions only (a quick look)")
    parser.add_argument(
        "--evidence",
        type=Path,
        default=None,
        help="cache of the readings: read from it if it exists, else write it",
    )
    parser.add_argument(
        "--write-calibration", action="store_true", help="write calibration.json into --model"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.evidence is not None and args.evidence.is_file():
        observed, read_seconds = pickle.loads(args.evidence.read_bytes())  # our own cache file
    else:
        observed, read_seconds = read_all(args.model, args.index, args.limit)
        if args.evidence is not None:
            args.evidence.write_bytes(pickle.dumps((observed, read_seconds)))
    target = args.target_precision
    scores = grid(observed, target)
    chosen = choose(scores)
    fitted_on = f"data/diabetes-qa/dev.json ({len(observed)} questions, 5-fold by document)"
    calibration = _fit(observed, chosen.k, target, fitted_on)
    report = {
        "questions": len(observed),
        "read_seconds": round(read_seconds, 1),
        "loadavg": os.getloadavg()[0],
        "target_precision": target,
        "grid": [dataclasses.asdict(s) for s in scores],
        "chosen": dataclasses.asdict(chosen),
        "risk_coverage": [dataclasses.asdict(c) for c in risk_coverage(observed, chosen.k)],
        "held_out": held_out(observed, target),
        "squad_style": squad_style(observed, chosen.k, calibration),
    }
    if args.write_calibration:
        report["written"] = str(calibration.save(args.model))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
