"""Measure BM25, dense and hybrid retrieval on the annotated diabetes questions; tune the fusion weight.

A passage is relevant to a question when it comes from the question's document and contains the whole
answer span (as in ``bench/tune_chunks.py``). For each answerable question of ``data/diabetes-qa`` we
report hit@1, hit@5 and hit@10 (a relevant passage in the top 1 / 5 / 10) and MRR@10.

With the stock all-MiniLM-L6-v2 on both sides, the fusion weight and method are chosen on the *train*
questions (the retriever never trained on them) and reported on *dev*, whose 19 documents no training
used. With ``--query-encoder`` (the question side fine-tuned on the train questions by ``finetune
train-query-encoder``) the train figures are no longer fair, so the weight is chosen on dev in
two-fold cross-validation *by document* (choose on one half of the dev documents, score on the other,
and back), and the tables show both encoders on the same questions. Scores are computed once per
question (one BM25 pass, one query embedding) and every setting is ranked offline with
``HybridIndex.rank``, the code the bot runs.

Usage:
    .venv/bin/retrieval index data/docs --index var/tune/index     # once (embeds the passages)
    .venv/bin/python bench/tune_retrieval.py --index var/tune/index \
        [--query-encoder models/query-encoder] [--json]
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

from retrieval import HybridIndex, HybridSettings, QueryTunedEncoder, SentenceEncoder, load_index
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
    vectors = index.encoder.encode_queries([index.bm25.synonyms.spell_out(q.text) for q in questions])
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


def table(index: HybridIndex, splits: dict[str, list[Scores]]) -> list[dict]:
    """Every setting's figures on every split."""
    rows = []
    for settings in grid():
        row = {"setting": label(settings), **dataclasses.asdict(settings)}
        for split, scored in splits.items():
            row[split] = evaluate(index, scored, settings)
        rows.append(row)
    return rows


def best_hybrid(rows: list[dict], split: str) -> dict:
    """The hybrid row with the best hit@5 (then hit@1) on ``split``."""
    return max(
        (r for r in rows if r["mode"] == "hybrid"), key=lambda r: (r[split]["hit@5"], r[split]["hit@1"])
    )


def cross_validated(index: HybridIndex, scored: list[Scores]) -> dict:
    """Two folds by document: the best hybrid setting of one half of the documents, scored on the other."""
    docs = sorted({s.question.doc_id for s in scored})
    folds = [set(docs[0::2]), set(docs[1::2])]
    hits = {"hit@1": 0.0, "hit@5": 0.0, "hit@10": 0.0}
    chosen = []
    for choose_on, score_on in ((folds[0], folds[1]), (folds[1], folds[0])):
        half = {
            "choose": [s for s in scored if s.question.doc_id in choose_on],
            "score": [s for s in scored if s.question.doc_id in score_on],
        }
        best = best_hybrid(table(index, half), "choose")
        chosen.append(best["setting"])
        for key in hits:
            hits[key] += best["score"][key] * len(half["score"])
    return {**{k: round(v / len(scored), 3) for k, v in hits.items()}, "chosen": chosen}


def print_table(title: str, rows: list[dict], splits: tuple[str, ...]) -> None:
    print(title)
    cells = [f"{split} {c}" if c == "hit@1" else c for split in splits for c in ("hit@1", "hit@5", "hit@10")]
    print(f"{'setting':<24} " + " ".join(f"{c:>{max(6, len(c))}}" for c in cells))
    for r in rows:
        figures = [r[split][c] for split in splits for c in ("hit@1", "hit@5", "hit@10")]
        print(
            f"{r['setting']:<24} "
            + " ".join(f"{f:>{max(6, len(c))}.3f}" for f, c in zip(figures, cells, strict=True))
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path("var/tune/index"))
    parser.add_argument("--query-encoder", type=Path, help="a fine-tuned question encoder to compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    passages = SentenceEncoder()
    index = load_index(args.index, passages)
    assert isinstance(index, HybridIndex)
    documents = {d.doc_id: d for d in read_folder(DOCS)[0]}
    questions = {split: load_questions(documents, split) for split in ("train", "dev")}
    splits = {split: score_questions(index, qs) for split, qs in questions.items()}
    rows = table(index, splits)
    report: dict = {"stock": {"rows": rows, "chosen": best_hybrid(rows, "train")["setting"]}}
    report["stock"]["dev_cross_validated"] = cross_validated(index, splits["dev"])
    if args.query_encoder is not None:
        tuned = HybridIndex(index.bm25, index.vectors, QueryTunedEncoder(passages, args.query_encoder))
        dev = {"dev": score_questions(tuned, questions["dev"])}
        tuned_rows = table(tuned, dev)
        report["tuned"] = {"rows": tuned_rows, "chosen": best_hybrid(tuned_rows, "dev")["setting"]}
        report["tuned"]["dev_cross_validated"] = cross_validated(tuned, dev["dev"])
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{len(splits['train'])} train / {len(splits['dev'])} dev answerable questions", file=sys.stderr)
    print_table("stock all-MiniLM-L6-v2 on both sides", rows, ("train", "dev"))
    print(f"chosen on train (hit@5, then hit@1): {report['stock']['chosen']}")
    for name in ("stock", "tuned"):
        if name in report:
            if name == "tuned":
                print_table(f"\nquestions through {args.query_encoder}", report[name]["rows"], ("dev",))
                print(f"chosen on all of dev: {report[name]['chosen']}")
            cv = report[name]["dev_cross_validated"]
            print(
                f"{name}: dev, weight chosen by 2-fold cross-validation by document: hit@1 {cv['hit@1']:.3f} "
                f"hit@5 {cv['hit@5']:.3f} hit@10 {cv['hit@10']:.3f} (chosen: {', '.join(cv['chosen'])})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
