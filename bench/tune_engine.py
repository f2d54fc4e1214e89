"""Tune the answer engine and fit its calibrated confidence on held-out diabetes questions (a report).

Every question of ``data/diabetes-qa/dev.json`` (SQuAD v2: 433 questions over 19 documents no training
step saw, ~13% unanswerable) and ``calib.json`` (447 questions about the 87 documents the reader trained
on, none of them trained on, 17% unanswerable: what members ask lands there) is asked open-domain
against an index of the bundled documents, exactly as ``bot ask`` asks it, and the procedure of
``bot.tuning`` (the library behind ``bot calibrate``) runs on it: per k, out-of-fold figures (answered
right, precision, unanswerable declined) at the threshold for the target precision (default
``bot.calibration.DEFAULT_TARGET_PRECISION``); a risk-coverage table of the chosen k; and
``held_out``, the whole procedure (choose k, fit, pick the threshold) on half of the documents, scored
on the other half, both ways round.

``--write-calibration`` writes the fitted model as ``calibration.json`` into the model directory (the
engine loads it with the model); ``--evidence FILE`` caches the readings between runs.

Usage:
    .venv/bin/python bench/tune_engine.py [--model models/reader] [--index var/tune/index] [--json]
    .venv/bin/python bench/tune_engine.py --write-calibration   # writes models/reader/calibration.json
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
from collections.abc import Sequence
from pathlib import Path

from bot.calibration import DEFAULT_CALIBRATION_DATA, DEFAULT_TARGET_PRECISION
from bot.config import SHIPPED_MODEL_DIR
from bot.tuning import Observed, read_all, tune
from finetune.atomic import write_bytes_atomic

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "data" / "docs"
__all__ = ["Observed"]  # the --evidence cache pickles it


def print_report(report: dict) -> None:
    n, seconds, load = report["questions"], report["read_seconds"], report["loadavg"]
    print(f"{n} questions read in {seconds:.0f} s (load average {load:.1f})")
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
    parser.add_argument(
        "--data", type=Path, nargs="+", default=[ROOT / path for path in DEFAULT_CALIBRATION_DATA],
        help="SQuAD v2 question files to tune on (default: dev.json and calib.json)",
    )  # fmt: skip
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
    names = ", ".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in args.data)
    if args.evidence is not None and args.evidence.is_file():
        cached = pickle.loads(args.evidence.read_bytes())  # our own cache file
        if len(cached) != 3 or cached[2] != names:
            parser.error(f"{args.evidence} holds the readings of other questions than {names}: delete it")
        observed, read_seconds, _ = cached
    else:
        observed, read_seconds = read_all(args.model, args.index, args.data, DOCS, args.limit)
        if args.evidence is not None:  # whole or not at all (a cut-off cache would be read next time), its
            # folder made when missing: a bare write_bytes lost minutes of readings to a missing folder
            write_bytes_atomic(args.evidence, pickle.dumps((observed, read_seconds, names)))
    fitted_on = f"{names} ({len(observed)} questions, 5-fold by document)"
    calibration, report = tune(observed, args.target_precision, read_seconds, fitted_on)
    if args.write_calibration:
        report["written"] = str(calibration.save(args.model))
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)


if __name__ == "__main__":
    main()
