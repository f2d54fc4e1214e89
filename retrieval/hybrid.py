"""Hybrid retrieval: BM25 and dense (sentence-embedding) scores fused per query.

BM25 finds the passages that share the member's words; the dense side finds those that mean the same in
other words ("my son has T1D" ~ "type 1 diabetes in children"), which is where lay questions lose BM25.
Each side proposes its best ``pool`` passages; on their union, both scores are min-max normalised over
the union and mixed as ``dense_weight * dense + (1 - dense_weight) * bm25`` (normalised-score fusion,
the "convex combination" that Bruch et al. 2023, "An Analysis of Fusion Functions for Hybrid Retrieval",
find at least as good as reciprocal-rank fusion once its weight is tuned). RRF is kept as an option;
``bench/bench_retrieval.py --quality`` measures both.

Dense scoring is one matrix-vector product over all passage vectors (exact search): at 100k passages of
384 floats it is a few milliseconds, less than encoding the query, so no approximate index is needed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from retrieval.encoder import TextEncoder
from retrieval.errors import SettingsError
from retrieval.index import BM25Index, top_k_order
from retrieval.passages import Passage, ScoredPassage
from retrieval.synonyms import SynonymTable

RetrievalMode = Literal["bm25", "dense", "hybrid"]
MODES: tuple[str, ...] = ("bm25", "dense", "hybrid")
FusionMethod = Literal["score", "rrf"]
# Reciprocal-rank fusion's constant (Cormack et al. 2009).
RRF_K = 60


@dataclass(frozen=True)
class HybridSettings:
    """How the two retrievers are combined.

    Attributes:
        mode: ``hybrid`` (both), ``bm25`` or ``dense`` alone.
        dense_weight: the dense side's weight in score fusion. 0.7, measured by ``bench/tune_retrieval.py``
            on diabetes dev, chosen by 2-fold cross-validation by document: both halves choose 0.7 with
            the stock encoder, 0.7 and 0.8 with the fine-tuned query encoder.
        fusion: ``score`` (normalised-score fusion) or ``rrf`` (reciprocal-rank fusion).
        pool: passages each side proposes before fusion.
    """

    mode: RetrievalMode = "hybrid"
    dense_weight: float = 0.7
    fusion: FusionMethod = "score"
    pool: int = 50

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SettingsError(f"retrieval mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0.0 <= self.dense_weight <= 1.0:
            raise SettingsError(f"dense_weight must be in [0, 1], got {self.dense_weight}")
        if self.fusion not in ("score", "rrf"):
            raise SettingsError(f"fusion must be score or rrf, got {self.fusion!r}")
        if self.pool < 1:
            raise SettingsError(f"pool must be at least 1, got {self.pool}")


def min_max(values: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] (all equal: all 1, so a lone candidate keeps full weight)."""
    low, high = float(values.min()), float(values.max())
    if high - low < 1e-12:
        return np.ones_like(values, dtype=np.float64)
    return (values - low) / (high - low)


def fuse_scores(
    bm25: np.ndarray,
    dense: np.ndarray,
    settings: HybridSettings,
    bm25_ranks: np.ndarray,
    dense_ranks: np.ndarray,
) -> np.ndarray:
    """The fused score of each candidate (higher is better); a pure function of its inputs.

    Args:
        bm25: raw BM25 scores of the candidates (0 where BM25 did not match).
        dense: cosine similarities of the candidates.
        settings: the fusion method and weight.
        bm25_ranks: 0-based BM25 rank of each candidate (a large number when BM25 did not propose it).
        dense_ranks: 0-based dense rank of each candidate.
    """
    w = settings.dense_weight
    if settings.fusion == "rrf":
        return w / (RRF_K + 1 + dense_ranks) + (1 - w) / (RRF_K + 1 + bm25_ranks)
    return w * min_max(dense) + (1 - w) * min_max(bm25)


class HybridIndex:
    """A BM25 index plus one unit vector per passage, searched in ``bm25``, ``dense`` or ``hybrid`` mode.

    Args:
        bm25: the lexical index (its passages are the passages, in index order).
        vectors: (len(passages), dim) float32 unit vectors, row i for passage i.
        encoder: embeds queries (must be the model that embedded the passages).
        settings: mode and fusion.
    """

    def __init__(
        self,
        bm25: BM25Index,
        vectors: np.ndarray,
        encoder: TextEncoder,
        settings: HybridSettings | None = None,
    ) -> None:
        if vectors.shape[0] != len(bm25.passages):
            raise ValueError(f"{vectors.shape[0]} vectors for {len(bm25.passages)} passages")
        self.bm25 = bm25
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.encoder = encoder
        self.settings = settings or HybridSettings()

    @property
    def passages(self) -> tuple[Passage, ...]:
        return self.bm25.passages

    @property
    def manifest(self):  # noqa: ANN201 - IndexManifest; typed at the BM25 index
        return self.bm25.manifest

    @property
    def synonyms(self) -> SynonymTable:
        return self.bm25.synonyms

    def __len__(self) -> int:
        return len(self.bm25)

    def search(self, query: str, top_k: int = 5, mode: RetrievalMode | None = None) -> list[ScoredPassage]:
        """The best passages for ``query``: ``score`` is the ranking score, ``bm25``/``dense`` the parts.

        Raises:
            ValueError: ``top_k`` below 1 or an unknown mode.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        mode = mode or self.settings.mode
        if mode not in MODES:
            raise SettingsError(f"retrieval mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "bm25":
            return self.bm25.search(query, top_k)
        cosines = self.vectors @ self.encoder.encode_queries([self.bm25.synonyms.spell_out(query)])[0]
        return self.rank(
            self.bm25.score_all(query), cosines, top_k, dataclasses.replace(self.settings, mode=mode)
        )

    def rank(
        self, bm25_scores: np.ndarray, cosines: np.ndarray, top_k: int, settings: HybridSettings
    ) -> list[ScoredPassage]:
        """The top passages given every passage's BM25 score and cosine (``bench/tune_retrieval.py``
        calls this with scores computed once per question, for a grid of settings)."""
        if settings.mode == "dense":
            order = top_k_order(np.arange(len(cosines)), cosines, top_k)
            return [self._scored(int(i), float(cosines[i]), bm25_scores, cosines) for i in order]
        if settings.mode == "bm25":
            matched = np.flatnonzero(bm25_scores > 0)
            order = matched[top_k_order(matched, bm25_scores[matched], top_k)]
            return [self._scored(int(i), float(bm25_scores[i]), bm25_scores, cosines) for i in order]
        pool = settings.pool
        every = np.arange(len(cosines))
        dense_top = every[top_k_order(every, cosines, pool)]
        matched = np.flatnonzero(bm25_scores > 0)
        bm25_top = matched[top_k_order(matched, bm25_scores[matched], pool)]
        candidates = np.union1d(dense_top, bm25_top)
        far = len(cosines) + pool  # the rank of a candidate a side did not propose
        dense_ranks = np.full(len(cosines), far, dtype=np.float64)
        dense_ranks[dense_top] = np.arange(len(dense_top))
        bm25_ranks = np.full(len(cosines), far, dtype=np.float64)
        bm25_ranks[bm25_top] = np.arange(len(bm25_top))
        fused = fuse_scores(
            bm25_scores[candidates],
            cosines[candidates],
            settings,
            bm25_ranks[candidates],
            dense_ranks[candidates],
        )
        order = top_k_order(candidates, fused, top_k)
        return [self._scored(int(candidates[i]), float(fused[i]), bm25_scores, cosines) for i in order]

    def _scored(self, i: int, score: float, bm25_scores: np.ndarray, cosines: np.ndarray) -> ScoredPassage:
        return ScoredPassage(self.passages[i], score, bm25=float(bm25_scores[i]), dense=float(cosines[i]))


def encode_passages(encoder: TextEncoder, passages: Sequence[Passage], progress=None) -> np.ndarray:  # noqa: ANN001
    """Unit vectors of the passages' text with their document title in front (titles name the topic)."""
    return encoder.encode([f"{p.title}. {p.text}" for p in passages], progress)
