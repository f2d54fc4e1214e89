"""Benchmark BM25Index against rank-bm25's full scan on synthetic corpora of 1k, 10k and 100k passages.

The corpora are made-up words drawn with Zipf-like frequencies (p(rank) ~ 1/rank^1.07, as in English
text), about 130 words a passage like our 120/200-word chunks. Queries draw 2-8 words from the same
distribution without its 25 most frequent words (real queries lose those as stop words).

For each size it prints: index build time (ours: tokenise + rank-bm25 statistics + inverted index;
baseline: rank-bm25's ``BM25Okapi(corpus)`` on already tokenised text), the memory the built index
holds (tracemalloc, passages themselves excluded), query latency p50/p95 (ours: ``index.search(text)``
including tokenisation; baseline: ``get_scores(tokens)`` + arg-sort for the top 10), the p50 speed-up,
and whether the top 10 are identical (same passages, same order) for every query.

With ``--hybrid`` it also times hybrid search (``HybridIndex.search``: the real all-MiniLM-L6-v2 query
embedding, one matrix-vector product over all passage vectors, BM25, fusion) against BM25 alone in the
same run. The passage vectors are random unit vectors: embedding 100k synthetic passages would take
hours on a CPU and their values do not change the cost of the search.

Usage:
    .venv/bin/python bench/bench_retrieval.py                      # 1k, 10k, 100k (a few minutes)
    .venv/bin/python bench/bench_retrieval.py --sizes 1000 10000 --queries 50 --no-memory
    .venv/bin/python bench/bench_retrieval.py --sizes 100000 --queries 200 --no-memory --hybrid
"""

from __future__ import annotations

import argparse
import gc
import string
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrieval import BM25Index, HybridIndex, IndexSettings, Passage, SentenceEncoder
from retrieval.index import make_bm25, passage_terms
from retrieval.passages import content_id
from retrieval.synonyms import SynonymTable
from retrieval.tokenize import STOP_WORDS

VOCABULARY = 50_000
ZIPF_EXPONENT = 1.07
WORDS_MEAN, WORDS_SD, WORDS_MIN, WORDS_MAX = 130, 35, 20, 200
QUERY_WORDS = (2, 8)
QUERY_SKIP_TOP = 25
TOP = 10
SEED = 1234
DIM = 384  # all-MiniLM-L6-v2's vector size


@dataclass(frozen=True)
class Row:
    size: int
    build_s: float
    base_build_s: float
    mem_mb: float | None
    base_mem_mb: float | None
    p50_ms: float
    p95_ms: float
    base_p50_ms: float
    base_p95_ms: float
    identical: int
    queries: int
    hybrid_p50_ms: float | None = None
    hybrid_p95_ms: float | None = None


def make_vocabulary(rng: np.random.Generator) -> list[str]:
    """Distinct pronounceable-ish lowercase words that are not stop words."""
    letters = np.array(list(string.ascii_lowercase))
    words: set[str] = set()
    while len(words) < VOCABULARY:
        length = int(rng.integers(3, 11))
        word = "".join(rng.choice(letters, length))
        if word not in STOP_WORDS:
            words.add(word)
    return sorted(words, key=lambda w: (len(w), w))  # short words frequent, as in real text


def zipf_probabilities(n: int, skip: int = 0) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** ZIPF_EXPONENT
    weights[:skip] = 0.0
    return weights / weights.sum()


def make_passages(size: int, vocabulary: list[str], rng: np.random.Generator) -> list[Passage]:
    probabilities = zipf_probabilities(len(vocabulary))
    lengths = np.clip(rng.normal(WORDS_MEAN, WORDS_SD, size).astype(int), WORDS_MIN, WORDS_MAX)
    drawn = rng.choice(len(vocabulary), size=int(lengths.sum()), p=probabilities)
    passages, offset = [], 0
    for i, length in enumerate(lengths):
        text = " ".join(vocabulary[w] for w in drawn[offset : offset + length]) + "."
        offset += length
        passages.append(Passage(content_id(text), text, f"doc{i // 10}", "", None, 0, len(text)))
    return passages


def make_queries(count: int, vocabulary: list[str], rng: np.random.Generator) -> list[str]:
    probabilities = zipf_probabilities(len(vocabulary), skip=QUERY_SKIP_TOP)
    return [
        " ".join(
            vocabulary[w]
            for w in rng.choice(len(vocabulary), int(rng.integers(*QUERY_WORDS)), p=probabilities)
        )
        for _ in range(count)
    ]


def timed(build: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    value = build()
    return value, time.perf_counter() - started


def retained_mb(build: Callable[[], Any]) -> float:
    """Memory still held by what ``build`` returns (tracemalloc: Python and numpy allocations)."""
    gc.collect()
    tracemalloc.start()
    value = build()
    gc.collect()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del value
    return current / 2**20


def baseline_top(model: Any, tokens: list[str]) -> list[int]:
    """rank-bm25's full scan: every passage scored, best ``TOP`` with a positive score, ties by id."""
    scores = model.get_scores(tokens)
    order = np.lexsort((np.arange(len(scores)), -scores))[:TOP]
    return [int(i) for i in order if scores[i] > 0]


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(samples, q)) * 1000


def time_hybrid(index: BM25Index, queries: list[str], encoder: Any, rng: np.random.Generator) -> list[float]:
    """Seconds of each hybrid query over random unit passage vectors (real query embedding)."""
    vectors = rng.standard_normal((len(index.passages), DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    hybrid = HybridIndex(index, vectors, encoder)
    hybrid.search(queries[0], TOP)  # warm-up: the encoder's first call allocates
    return [timed(lambda q=query: hybrid.search(q, TOP))[1] for query in queries]


def bench_size(
    size: int, queries: list[str], vocabulary: list[str], memory: bool, encoder: Any = None
) -> Row:
    rng = np.random.default_rng(SEED + size)
    passages = make_passages(size, vocabulary, rng)
    settings = IndexSettings(index_title=False)
    no_synonyms = SynonymTable()

    def build_ours() -> BM25Index:
        return BM25Index(passages, settings, synonyms=no_synonyms)

    index, build_s = timed(build_ours)
    corpus = [passage_terms(p, settings) for p in passages]
    model, base_build_s = timed(lambda: make_bm25(corpus, settings))
    mem = retained_mb(build_ours) if memory else None
    base_mem = retained_mb(lambda: make_bm25(corpus, settings)) if memory else None
    position = {p.id: i for i, p in enumerate(index.passages)}

    ours_s, base_s, identical = [], [], 0
    for query in queries:
        results, seconds = timed(lambda q=query: index.search(q, TOP))
        ours_s.append(seconds)
        tokens, _ = index.query_terms(query)
        expected, seconds = timed(lambda t=tokens: baseline_top(model, t))
        base_s.append(seconds)
        identical += [position[r.passage.id] for r in results] == expected
    hybrid_s = time_hybrid(index, queries, encoder, rng) if encoder is not None else None
    return Row(
        size, build_s, base_build_s, mem, base_mem,
        percentile_ms(ours_s, 50), percentile_ms(ours_s, 95),
        percentile_ms(base_s, 50), percentile_ms(base_s, 95), identical, len(queries),
        percentile_ms(hybrid_s, 50) if hybrid_s else None, percentile_ms(hybrid_s, 95) if hybrid_s else None,
    )  # fmt: skip


def print_table(rows: list[Row]) -> None:
    def mem(value: float | None) -> str:
        return f"{value:8.1f}" if value is not None else f"{'-':>8}"

    header = (
        f"{'passages':>9} | {'build s':>8} {'base s':>7} | {'mem MB':>8} {'base MB':>8} | "
        f"{'p50 ms':>7} {'p95 ms':>7} | {'base p50':>8} {'base p95':>8} | {'p50 speed-up':>12} | top-10 same"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.size:>9} | {r.build_s:8.2f} {r.base_build_s:7.2f} | {mem(r.mem_mb)} {mem(r.base_mem_mb)} | "
            f"{r.p50_ms:7.2f} {r.p95_ms:7.2f} | {r.base_p50_ms:8.2f} {r.base_p95_ms:8.2f} | "
            f"{r.base_p50_ms / r.p50_ms:11.1f}x | {r.identical}/{r.queries}"
        )
    for r in rows:
        if r.hybrid_p50_ms is not None:
            print(
                f"hybrid at {r.size} passages: p50 {r.hybrid_p50_ms:.2f} ms, p95 {r.hybrid_p95_ms:.2f} ms "
                f"(query embedding included) vs BM25 p50 {r.p50_ms:.2f} ms: {r.hybrid_p50_ms / r.p50_ms:.1f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000], help="corpus sizes")
    parser.add_argument("--queries", type=int, default=200, help="queries per size")
    parser.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the (slow) memory pass"
    )
    parser.add_argument("--hybrid", action="store_true", help="also time hybrid search (loads MiniLM)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the query encoder")
    args = parser.parse_args()
    encoder = SentenceEncoder(num_threads=args.threads) if args.hybrid else None
    rng = np.random.default_rng(SEED)
    vocabulary = make_vocabulary(rng)
    queries = make_queries(args.queries, vocabulary, rng)
    rows = []
    for size in args.sizes:
        rows.append(bench_size(size, queries, vocabulary, args.memory, encoder))
        print(f"done {size} passages", flush=True)
    print_table(rows)
    failed = [r.size for r in rows if r.identical != r.queries]
    if failed:
        raise SystemExit(f"top-10 differs from the baseline at sizes {failed}")


if __name__ == "__main__":
    main()
