"""Measure how chunking and query settings affect retrieval on the annotated diabetes questions.

For every answerable question of ``data/diabetes-qa/{train,dev}.json`` (SQuAD v2, each article naming
its document in ``"doc"``), a passage is relevant when it comes from that document and contains the
whole answer span. We report, on train (where the defaults are chosen), hit@1 and hit@5 (a relevant
passage in the top 1 / top 5), MRR@5 and the words the reader has to read for the top 5 (the cost
side of bigger passages); and hit@5 on dev, as a check that the choice holds on unseen documents.

Usage:
    .venv/bin/python bench/tune_chunks.py            # the grid below, as a table
    .venv/bin/python bench/tune_chunks.py --quick    # a few settings only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

from retrieval import BM25Index, IndexSettings
from retrieval.ingest import Document, read_folder
from retrieval.passages import split_into_passages
from retrieval.query_training import LocatedQuestion as Question
from retrieval.query_training import locate_questions
from retrieval.store import unique_passages

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "data" / "docs"
QA_DIR = ROOT / "data" / "diabetes-qa"
SPLITS = ("train", "dev")
TOP_K = 5


def load_questions(documents: dict[str, Document], split: str) -> list[Question]:
    """Answerable questions of one split, with their answer span located in the normalised document."""
    path = QA_DIR / f"{split}.json"
    texts = {doc_id: d.text for doc_id, d in documents.items()}
    return locate_questions(json.loads(path.read_text(encoding="utf-8")), path.name, texts)


def build(documents: list[Document], settings: IndexSettings) -> BM25Index:
    """An in-memory index of the documents, cut with ``settings``."""
    passages = unique_passages(
        p
        for d in documents
        for p in split_into_passages(
            d.text,
            doc_id=d.doc_id,
            title=d.title,
            source=d.source,
            target_words=settings.target_words,
            max_words=settings.max_words,
            overlap_sentences=settings.overlap_sentences,
        )
    )
    return BM25Index(passages, settings)


def evaluate(index: BM25Index, questions: list[Question]) -> dict[str, float]:
    """hit@1, hit@5, MRR@5 and mean words in the top 5."""
    ranks, words = [], []
    for q in questions:
        results = index.search(q.text, TOP_K)
        words.append(sum(len(r.passage.text.split()) for r in results))
        hit = [
            r.passage.doc_id == q.doc_id and r.passage.start <= q.start and q.end <= r.passage.end
            for r in results
        ]
        ranks.append(hit.index(True) + 1 if any(hit) else 0)
    n = len(questions)
    return {
        "passages": len(index),
        "hit@1": sum(r == 1 for r in ranks) / n,
        "hit@5": sum(r > 0 for r in ranks) / n,
        "mrr@5": sum(1 / r for r in ranks if r) / n,
        "words@5": statistics.fmean(words),
    }


def grid(quick: bool) -> list[IndexSettings]:
    base = IndexSettings()
    if quick:
        return [base, dataclasses.replace(base, synonym_weight=0.0)]
    sizes = [(40, 80), (60, 100), (80, 140), (120, 200), (160, 260), (200, 320), (300, 450)]
    settings = [dataclasses.replace(base, target_words=t, max_words=m) for t, m in sizes]
    settings += [dataclasses.replace(base, overlap_sentences=o) for o in (0, 2)]
    settings += [dataclasses.replace(base, synonym_weight=w) for w in (0.0, 0.25, 1.0)]
    settings += [dataclasses.replace(base, index_title=False)]
    settings += [dataclasses.replace(base, k1=k1, b=b) for k1, b in ((1.2, 0.75), (0.9, 0.4), (1.5, 0.9))]
    settings += [dataclasses.replace(base, variant=v) for v in ("plus", "l")]
    return settings


def describe(settings: IndexSettings) -> str:
    return (
        f"{settings.target_words}/{settings.max_words} ov{settings.overlap_sentences} "
        f"syn{settings.synonym_weight} title{int(settings.index_title)} {settings.variant} "
        f"k1={settings.k1} b={settings.b}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the defaults and no-synonyms")
    args = parser.parse_args()
    documents, _ = read_folder(DOCS)
    by_id = {d.doc_id: d for d in documents}
    train, dev = (load_questions(by_id, split) for split in SPLITS)
    print(f"{len(train)} train, {len(dev)} dev answerable questions; relevant = holds the whole answer")
    print(
        f"{'settings':<48} {'passages':>8} {'hit@1':>6} {'hit@5':>6} {'mrr@5':>6} {'words@5':>8} "
        f"{'dev hit@5':>9}"
    )
    for settings in grid(args.quick):
        started = time.perf_counter()
        index = build(documents, settings)
        m, d = evaluate(index, train), evaluate(index, dev)
        print(
            f"{describe(settings):<48} {m['passages']:>8} {m['hit@1']:>6.3f} {m['hit@5']:>6.3f} "
            f"{m['mrr@5']:>6.3f} {m['words@5']:>8.0f} {d['hit@5']:>9.3f}   "
            f"({time.perf_counter() - started:.1f} s)"
        )


if __name__ == "__main__":
    main()
