"""Measure BM25, dense and hybrid retrieval on the annotated diabetes questions; tune the fusion weight.

A passage is relevant to a question when it comes from the question's document and contains the whole
answer span (as in ``bench/tune_chunks.py``). For each answerable question of ``data/diabetes-qa`` we
report hit@1, hit@5 and hit@10 (a relevant passage in the top 1 / 5 / 10) and MRR@10.

The fusion weight and method are chosen on the *train* questions (the retriever never trained on them:
the encoder is the stock all-MiniLM-L6-v2) and then reported on *dev*, whose 19 documents no choice in
this project was made on... except this one's check. Scores are computed once per question (one BM25
pass, one query embedding) and every setting is ranked offline with ``HybridIndex.rank``, the code the
bot runs.

Usage:
    .venv/bin/retrieval index data/docs --index var/tune/index     # once (embeds the passages)
    .venv/bin/python bench/tune_retrieval.py --index var/tune/index [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tune_chunks import DOCS, Question, load_questions

from retrieval import HybridIndex, HybridSettings, SentenceEncoder, load_index
from retrieval.ingest import read_folder

WEIGHTS = tuple(round(w / 10, 1) for w in range(11))
CUTOFFS = (1, 5, 10)


@dataclass(frozen=True)
class Scores:
    """One question's BM25 score and cosine for every passage."""

    question: Question
    bm25: np.ndarray
    cosines: np.ndarray


def score_questions(index: HybridIndex, questions: list[Question]) -> list[Scores]:
    """BM25 and cosine scores of every passage for every question (queries embedded in one batch)."""
    vectors = index.encoder.encode([index.bm25.synonyms.spell_out(q.text) for q in questions])
    return [
        Scores(q, index.bm25.score_all(q.text), index.vectors @ v)
        for q, v in zip(questions, vectors, strict=True)
    ]


def relevant(index: HybridIndex, question: Question, passage_index: int) -> bool:
    p = index.passages[passage_index]
    return p.doc_id == question.doc_id and p.start <= question.start and question.end <= p.end


def evaluate(index: HybridIndex, scored: list[Scores], settings: HybridSettings) -> dict[str, float]:
    """hit@1/5/10 and MRR@10 of one setting."""
    positions = {p.id: i for i, p in enumerate(index.passages)}
    hits = {k: 0 for k in CUTOFFS}
    reciprocal = 0.0
    for s in scored:
        ranked = index.rank(s.bm25, s.cosines, max(CUTOFFS), settings)
        ranks = [r for r, sp in enumerate(ranked) if relevant(index, s.question, positions[sp.passage.id])]
        first = ranks[0] if ranks else None
        for k in CUTOFFS:
            hits[k] += first is not None and first < k
        reciprocal += 1 / (first + 1) if first is not None else 0.0
    n = len(scored)
    return {**{f"hit@{k}": round(hits[k] / n, 3) for k in CUTOFFS}, "mrr@10": round(reciprocal / n, 3)}


def grid() -> list[HybridSettings]:
    settings = [HybridSettings(mode="bm25"), HybridSettings(mode="dense")]
    for fusion in ("score", "rrf"):
        settings += [HybridSettings(mode="hybrid", fusion=fusion, dense_weight=w) for w in WEIGHTS[1:-1]]
    return settings


def label(s: HybridSettings) -> str:
    return s.mode if s.mode != "hybrid" else f"hybrid {s.fusion} w={s.dense_weight}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("var/tune/index"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    index = load_index(args.index, SentenceEncoder())
    assert isinstance(index, HybridIndex)
    documents = {d.doc_id: d for d in read_folder(DOCS)[0]}
    splits = {split: score_questions(index, load_questions(documents, split)) for split in ("train", "dev")}
    rows = []
    for settings in grid():
        row = {"setting": label(settings), **dataclasses.asdict(settings)}
        for split, scored in splits.items():
            row[split] = evaluate(index, scored, settings)
        rows.append(row)
    best = max(
        (r for r in rows if r["mode"] == "hybrid"), key=lambda r: (r["train"]["hit@5"], r["train"]["hit@1"])
    )
    if args.json:
        print(json.dumps({"rows": rows, "chosen": best["setting"]}))
        return 0
    print(f"{len(splits['train'])} train / {len(splits['dev'])} dev answerable questions", file=sys.stderr)
    cells = ("train hit@1", "hit@5", "hit@10", "dev hit@1", "hit@5", "hit@10")
    print(f"{'setting':<24} " + " ".join(f"{c:>{max(6, len(c))}}" for c in cells))
    for r in rows:
        t, d = r["train"], r["dev"]
        print(
            f"{r['setting']:<24} {t['hit@1']:>11.3f} {t['hit@5']:>6.3f} {t['hit@10']:>6.3f} "
            f"{d['hit@1']:>9.3f} {d['hit@5']:>6.3f} {d['hit@10']:>6.3f}"
        )
    print(f"chosen on train (hit@5, then hit@1): {best['setting']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
