"""BM25 over passages: rank-bm25 computes the corpus statistics, an inverted index makes search fast.

rank-bm25's ``get_scores`` loops in Python over every passage for every query term (tens of ms per
term at 100k passages). ``BM25Index`` keeps, per term, the ids of the passages holding it and the term
counts (postings, as numpy arrays) and adds each query term's contribution to those passages only,
with rank-bm25's own formula, operation for operation, so the scores are bit-identical to
``get_scores`` (tests/test_retrieval_index.py checks all three variants; bench/bench_retrieval.py
compares speed).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from rank_bm25 import BM25, BM25L, BM25Okapi, BM25Plus

from retrieval.passages import Passage, ScoredPassage
from retrieval.settings import IndexSettings
from retrieval.synonyms import SynonymTable
from retrieval.tokenize import tokenize

if TYPE_CHECKING:  # store imports this module
    from retrieval.manifest import IndexManifest

logger = logging.getLogger(__name__)

# rank-bm25's own delta defaults, used when IndexSettings.delta is None.
DEFAULT_DELTA = {"plus": 1.0, "l": 0.5}


class GuardedBM25Okapi(BM25Okapi):
    """BM25Okapi with an idf that is never zero or negative.

    rank-bm25's idf is ``log((N - n + 0.5) / (n + 0.5))``: 0 for a term in exactly half the passages,
    negative above half, and those get ``epsilon * mean idf``, which is itself <= 0 on a corpus of two
    or three passages, so every score can be 0 or the more matching passage can rank lower. We use
    Lucene's BM25 idf ``log(1 + (N - n + 0.5) / (n + 0.5))`` (Robertson-Sparck Jones shifted by one):
    the same ordering of terms by rarity, always positive, no epsilon needed (as in Lucene's
    ``BM25Similarity.idf``).
    """

    def _calc_idf(self, nd: dict[str, int]) -> None:
        for word, freq in nd.items():
            self.idf[word] = math.log(1.0 + (self.corpus_size - freq + 0.5) / (freq + 0.5))
        self.average_idf = sum(self.idf.values()) / len(self.idf) if self.idf else 0.0


def make_bm25(corpus: Sequence[list[str]], settings: IndexSettings) -> BM25:
    """The rank-bm25 model for a tokenised corpus (also the benchmark's and tests' baseline).

    Args:
        corpus: one token list per passage (at least one passage).
        settings: variant, k1, b, delta.

    Returns:
        A ``GuardedBM25Okapi``, ``BM25Plus`` or ``BM25L``.
    """
    if settings.variant == "okapi":
        return GuardedBM25Okapi(list(corpus), k1=settings.k1, b=settings.b)
    delta = settings.delta if settings.delta is not None else DEFAULT_DELTA[settings.variant]
    model = BM25Plus if settings.variant == "plus" else BM25L
    return model(list(corpus), k1=settings.k1, b=settings.b, delta=delta)


def passage_terms(passage: Passage, settings: IndexSettings) -> list[str]:
    """The terms a passage is indexed under (its title's too, when ``settings.index_title``)."""
    text = f"{passage.title}\n{passage.text}" if settings.index_title else passage.text
    return tokenize(text)


@dataclass(frozen=True)
class _Postings:
    """Passages holding one term: their ids (ascending) and the term's count in each."""

    ids: np.ndarray
    tf: np.ndarray


class _Scorer:
    """rank-bm25's scoring formulas over postings; bit-identical to ``model.get_scores``."""

    def __init__(self, model: BM25, settings: IndexSettings) -> None:
        self.variant = settings.variant
        self.k1 = model.k1
        self.b = model.b
        self.delta = getattr(model, "delta", 0.0)
        self.idf: dict[str, float] = model.idf
        self.size = model.corpus_size
        # The same expressions as rank-bm25's, evaluated once instead of once per query term.
        doc_len = np.array(model.doc_len)
        self.length_norm = 1 - self.b + self.b * doc_len / model.avgdl
        self.k_norm = self.k1 * (1 - self.b + self.b * doc_len / model.avgdl)
        self.postings = _invert(model.doc_freqs)

    def score(
        self, terms: Sequence[str], weights: Sequence[float] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores of the passages that hold at least one of ``terms``.

        Args:
            terms: query terms, duplicates counted as rank-bm25 counts them.
            weights: one multiplier per term (synonyms count less); ``None``: all 1, which gives
                exactly rank-bm25's scores.

        Returns:
            ``(ids, scores)``: candidate passage ids (ascending) and their scores.
        """
        weights = [1.0] * len(terms) if weights is None else list(weights)
        known = [(t, w) for t, w in zip(terms, weights, strict=True) if t in self.postings]
        # Dense accumulators: one scatter-add per term is cheaper than merging candidate lists, and
        # O(passages) numpy work is ~0.1 ms at 100k passages.
        scores = np.zeros(self.size)
        matched = np.zeros(self.size, dtype=bool)
        for term, weight in known:
            postings = self.postings[term]
            gain = self._term_scores(self.idf[term], postings)
            if weight != 1.0:
                gain = gain * weight
            if self.variant == "plus":
                # BM25Plus adds idf * delta even where the term is absent; keep rank-bm25's rounding.
                full = np.full(self.size, self.idf[term] * (self.delta + 0.0) * weight)
                full[postings.ids] = gain
                scores += full
            else:
                scores[postings.ids] += gain
            matched[postings.ids] = True
        candidates = np.flatnonzero(matched)
        return candidates, scores[candidates]

    def _term_scores(self, idf: float, postings: _Postings) -> np.ndarray:
        tf, ids, k1 = postings.tf, postings.ids, self.k1
        if self.variant == "okapi":
            return idf * (tf * (k1 + 1) / (tf + self.k_norm[ids]))
        if self.variant == "plus":
            return idf * (self.delta + (tf * (k1 + 1)) / (self.k_norm[ids] + tf))
        ctd = tf / self.length_norm[ids]
        return idf * tf * (k1 + 1) * (ctd + self.delta) / (k1 + ctd + self.delta)


def _invert(doc_freqs: Sequence[dict[str, int]]) -> dict[str, _Postings]:
    """Term -> postings, from rank-bm25's per-passage term counts.

    Built as three flat arrays (term, passage, count) sorted by term; each term's postings are
    views into them, which is faster to build and smaller than one pair of lists per term.
    """
    term_ids: dict[str, int] = {}
    flat_terms: list[int] = []
    flat_counts: list[int] = []
    lengths: list[int] = []
    for frequencies in doc_freqs:
        flat_terms.extend([term_ids.setdefault(term, len(term_ids)) for term in frequencies])
        flat_counts.extend(frequencies.values())
        lengths.append(len(frequencies))
    terms = np.array(flat_terms, dtype=np.int64)
    order = np.argsort(terms, kind="stable")  # stable: passage ids stay ascending within a term
    passages = np.repeat(np.arange(len(doc_freqs), dtype=np.int64), lengths)[order]
    counts = np.array(flat_counts, dtype=np.float64)[order]
    bounds = np.searchsorted(terms[order], np.arange(len(term_ids) + 1))
    return {
        term: _Postings(passages[bounds[i] : bounds[i + 1]], counts[bounds[i] : bounds[i + 1]])
        for term, i in term_ids.items()
    }


def top_k_order(ids: np.ndarray, scores: np.ndarray, top_k: int) -> np.ndarray:
    """Positions of the ``top_k`` best scores: highest first, ties by lower passage id.

    Args:
        ids: passage ids (the tie-break).
        scores: their scores.
        top_k: how many.

    Returns:
        Positions into ``ids``/``scores``.
    """
    if len(scores) > top_k:
        # Keep everything tied with the k-th best so the tie-break stays exact.
        kth = np.partition(scores, len(scores) - top_k)[len(scores) - top_k]
        keep = np.nonzero(scores >= kth)[0]
    else:
        keep = np.arange(len(scores))
    order = keep[np.lexsort((ids[keep], -scores[keep]))]
    return order[:top_k]


class BM25Index:
    """Passages plus a BM25 model over them; ``search`` is the one verb.

    Build one with ``retrieval.build_index`` (on disk) and open it with ``retrieval.load_index``; the
    constructor is for in-memory use (tests, benchmarks).

    Attributes:
        passages: the passages, in index order.
        settings: how they were cut and are scored.
        manifest: the on-disk manifest (``None`` for an index that was never saved).
        synonyms: the query-time synonym table.
    """

    def __init__(
        self,
        passages: Sequence[Passage],
        settings: IndexSettings | None = None,
        manifest: IndexManifest | None = None,
        synonyms: SynonymTable | None = None,
    ) -> None:
        self.passages: tuple[Passage, ...] = tuple(passages)
        self.settings = settings or IndexSettings()
        self.manifest = manifest
        self.synonyms = synonyms if synonyms is not None else SynonymTable.load(self.settings.synonyms_path)
        corpus = [passage_terms(p, self.settings) for p in self.passages]
        self._scorer = _Scorer(make_bm25(corpus, self.settings), self.settings) if any(corpus) else None

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def vocabulary_size(self) -> int:
        """Distinct index terms."""
        return len(self._scorer.postings) if self._scorer is not None else 0

    def query_terms(self, query: str) -> tuple[list[str], list[float]]:
        """The terms a query is scored with and their weights: its tokens (1.0), then the tokens of
        their synonyms (``settings.synonym_weight``)."""
        tokens = tokenize(query)
        added = self.synonyms.expand(tokens)[len(tokens) :]
        return tokens + added, [1.0] * len(tokens) + [self.settings.synonym_weight] * len(added)

    def search(self, query: str, top_k: int = 5) -> list[ScoredPassage]:
        """The passages that best match a query.

        Args:
            query: the member's question, as typed.
            top_k: how many passages at most.

        Returns:
            Best first; only passages sharing at least one term with the query, so ``[]`` when nothing
            matches.

        Raises:
            ValueError: ``top_k`` below 1.
        """
        terms, weights = self.query_terms(query)
        return self.search_terms(terms, top_k, weights)

    def score_all(self, query: str) -> np.ndarray:
        """The BM25 score of every passage for ``query`` (0 where it shares no term), in index order."""
        scores = np.zeros(len(self.passages))
        if self._scorer is not None:
            ids, matched = self._scorer.score(*self.query_terms(query))
            scores[ids] = matched
        return scores

    def search_terms(
        self, terms: Sequence[str], top_k: int = 5, weights: Sequence[float] | None = None
    ) -> list[ScoredPassage]:
        """``search`` for an already tokenised query (no synonym expansion).

        Args:
            terms: query terms.
            top_k: how many passages at most.
            weights: one multiplier per term; ``None``: rank-bm25's plain scores.

        Returns:
            Best first, ties broken by index order.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if self._scorer is None:
            return []
        ids, scores = self._scorer.score(terms, weights)
        order = top_k_order(ids, scores, top_k)
        return [
            ScoredPassage(self.passages[ids[i]], float(scores[i]), bm25=float(scores[i]))
            for i in order
            if scores[i] > 0
        ]
