"""Measure the FAQ matcher's similarity threshold on written paraphrases (``data/faq-paraphrases.json``).

Every FAQ entry's question is embedded with all-MiniLM-L6-v2 (``bot.faq.FaqMatcher``, as the bot does);
each paraphrase should match its own entry, each off-topic probe (questions the documents answer, other
group questions the FAQ does not hold) should match nothing. For each threshold:

- precision: of the probes that matched an entry, the share that matched the right one;
- recall: the share of paraphrases that matched their own entry;
- false matches: off-topic probes that matched some entry (what members would be answered wrongly).

The chosen threshold is the lowest one at which no off-topic probe matches (a medical question answered
with a meeting time costs more than a paraphrase falling through to the documents). Paraphrases sent to
the wrong entry are counted: they are mostly "when" and "where" questions about the same meetings,
which sentence embeddings barely tell apart. Half the probes also choose a threshold alone and are
scored on the other half, so the printed figure is not only in-sample.

Usage:
    .venv/bin/python bench/tune_faq_threshold.py [--data data/faq-paraphrases.json] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from bot.faq import FaqEntry, FaqMatcher
from retrieval import SentenceEncoder

THRESHOLDS = tuple(round(float(t), 2) for t in np.arange(0.30, 0.951, 0.02))


def load(path: Path) -> tuple[list[FaqEntry], list[tuple[str, int]], list[str]]:
    """Entries, (paraphrase, entry index) pairs and off-topic probes."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = [FaqEntry(i + 1, e["question"], e["answer"]) for i, e in enumerate(data["entries"])]
    positives = [(p, i) for i, e in enumerate(data["entries"]) for p in e["paraphrases"]]
    return entries, positives, list(data["off_topic"])


def best_matches(matcher: FaqMatcher, entries: list[FaqEntry], probes: list[str]) -> list[tuple[int, float]]:
    """(closest entry index, similarity) for each probe."""
    out = []
    for probe in probes:
        sims = matcher.similarities(probe, entries)
        out.append((int(np.argmax(sims)), float(np.max(sims))))
    return out


def score(positives: list[tuple[int, int, float]], negatives: list[float], threshold: float) -> dict:
    """Precision, recall and counts at ``threshold`` (positives: (wanted, got, similarity))."""
    right = sum(1 for want, got, sim in positives if sim >= threshold and want == got)
    wrong_entry = sum(1 for want, got, sim in positives if sim >= threshold and want != got)
    false = sum(1 for sim in negatives if sim >= threshold)
    matched = right + wrong_entry + false
    return {
        "threshold": threshold,
        "precision": right / matched if matched else 1.0,
        "recall": right / len(positives) if positives else 0.0,
        "wrong_entry": wrong_entry,
        "false_matches": false,
    }


def choose(positives: list[tuple[int, int, float]], negatives: list[float]) -> dict:
    """The lowest threshold at which no off-topic probe matches."""
    for threshold in THRESHOLDS:
        row = score(positives, negatives, threshold)
        if row["false_matches"] == 0:
            return row
    return score(positives, negatives, THRESHOLDS[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/faq-paraphrases.json"))
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    entries, positive_pairs, off_topic = load(args.data)
    encoder = SentenceEncoder(num_threads=1)
    matcher = FaqMatcher(lambda: entries, lambda: encoder)
    started = time.perf_counter()
    pos = best_matches(matcher, entries, [p for p, _ in positive_pairs])
    neg = [sim for _, sim in best_matches(matcher, entries, off_topic)]
    seconds = time.perf_counter() - started
    positives = [(want, got, sim) for (_, want), (got, sim) in zip(positive_pairs, pos, strict=True)]
    chosen = choose(positives, neg)
    # Held out: even-numbered paraphrases choose, odd-numbered ones are scored (and vice versa).
    folds = []
    for fold in (0, 1):
        tune = [p for i, p in enumerate(positives) if i % 2 == fold]
        test = [p for i, p in enumerate(positives) if i % 2 != fold]
        tune_neg, test_neg = neg[fold::2], neg[1 - fold :: 2]
        picked = choose(tune, tune_neg)["threshold"]
        folds.append(score(test, test_neg, picked))
    report = {
        "data": str(args.data),
        "entries": len(entries),
        "paraphrases": len(positives),
        "off_topic": len(off_topic),
        "chosen": chosen,
        "held_out_folds": folds,
        "sweep": [score(positives, neg, t) for t in THRESHOLDS],
        "max_off_topic_similarity": max(neg),
        "min_paraphrase_similarity": min(sim for *_, sim in positives),
        "seconds": seconds,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"{len(entries)} entries, {len(positives)} paraphrases, {len(off_topic)} off-topic probes "
          f"({seconds:.1f} s to embed)")  # fmt: skip
    print("threshold  precision  recall  wrong-entry  false-matches")
    for row in report["sweep"]:
        mark = "  <- chosen" if row["threshold"] == chosen["threshold"] else ""
        print(f"  {row['threshold']:.2f}     {row['precision']:.3f}    {row['recall']:.3f}"
              f"   {row['wrong_entry']:>5}      {row['false_matches']:>5}{mark}")  # fmt: skip
    for i, row in enumerate(folds):
        print(f"held-out fold {i}: threshold {row['threshold']:.2f} precision {row['precision']:.3f} "
              f"recall {row['recall']:.3f}")  # fmt: skip
    print(f"highest off-topic similarity {report['max_off_topic_similarity']:.3f}, lowest paraphrase "
          f"similarity {report['min_paraphrase_similarity']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
