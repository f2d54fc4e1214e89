"""The one configuration object of the retrieval package: ``IndexSettings``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from retrieval.errors import SettingsError

BM25Variant = Literal["okapi", "plus", "l"]
VARIANTS: tuple[str, ...] = ("okapi", "plus", "l")

# The table shipped with the package; an admin edits it in place or points `synonyms` elsewhere.
DEFAULT_SYNONYMS = Path(__file__).resolve().parent / "synonyms.txt"


@dataclass(frozen=True)
class IndexSettings:
    """How documents are cut into passages and how passages are scored.

    Defaults were chosen with ``bench/tune_chunks.py`` on the 870 answerable train questions of
    ``data/diabetes-qa`` (dev: 183, checked after): how often a passage holding the whole answer is in
    the top 5 (hit@5), against the words the reader must then read (words@5):

    ============  ======  =====  ========  =========
    target/max    hit@1   hit@5  words@5   dev hit@5
    ============  ======  =====  ========  =========
    40/80         0.313   0.599    249     0.710
    80/140        0.349   0.670    447     0.776
    **120/200**   0.376   0.699    642     0.798
    160/260       0.392   0.709    835     0.825
    300/450       0.411   0.715   1427     0.836
    ============  ======  =====  ========  =========

    Past 120/200 a point of hit@5 costs ~200 more words per question for the reader, and 200 words
    (~260 word pieces) plus a question still fit one 384-token window of the BERT reader. Against
    the 120/200 defaults (hit@5 0.699; the standard error is ~1.5 points): no overlap 0.690, two
    sentences 0.691; no title terms 0.675; synonym weight 0 gives 0.684, 1.0 gives 0.670 (expansions
    drown the member's own words); k1/b variations 0.684-0.699; BM25Plus 0.698; BM25L 0.531.

    Attributes:
        target_words: a passage is closed once it reaches this many words.
        max_words: a passage never grows beyond this; a single longer "sentence" (usually a list with
            no full stops) is split at word boundaries, the only case where a sentence is cut.
        overlap_sentences: sentences repeated at the start of the next passage, so an answer that
            straddles a boundary is whole in one of them.
        variant: rank-bm25 class: ``okapi`` (BM25Okapi), ``plus`` (BM25Plus) or ``l`` (BM25L).
        k1: term-frequency saturation (rank-bm25's default 1.5).
        b: length normalisation (rank-bm25's default 0.75).
        delta: the lower-bound term of BM25Plus / BM25L; ``None``: rank-bm25's default for the
            variant (1.0 and 0.5). BM25Okapi takes no delta and, in our guarded form, needs no
            ``epsilon`` idf floor either (see ``retrieval.index.GuardedBM25Okapi``).
        index_title: index each passage's document title with its text (titles name the condition,
            which passages rarely repeat).
        synonym_weight: how much a query term added by the synonym table counts next to a term the
            member typed (1.0: the same).
        synonyms: the synonym/abbreviation table applied to queries; ``None``: the bundled
            ``retrieval/synonyms.txt``.
    """

    target_words: int = 120
    max_words: int = 200
    overlap_sentences: int = 1
    variant: BM25Variant = "okapi"
    k1: float = 1.5
    b: float = 0.75
    delta: float | None = None
    index_title: bool = True
    synonym_weight: float = 0.25
    synonyms: Path | None = None

    def __post_init__(self) -> None:
        if self.target_words < 1:
            raise SettingsError(f"target_words must be at least 1, got {self.target_words}")
        if self.max_words < self.target_words:
            raise SettingsError(f"max_words ({self.max_words}) must be >= target_words ({self.target_words})")
        if self.overlap_sentences < 0:
            raise SettingsError(f"overlap_sentences must be >= 0, got {self.overlap_sentences}")
        if self.variant not in VARIANTS:
            raise SettingsError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise SettingsError(f"need k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}")
        if self.synonyms is not None and not isinstance(self.synonyms, Path):
            object.__setattr__(self, "synonyms", Path(self.synonyms))

    @property
    def synonyms_path(self) -> Path:
        """The synonym table in effect."""
        return self.synonyms if self.synonyms is not None else DEFAULT_SYNONYMS

    def chunking_key(self) -> tuple[int, int, int]:
        """The settings that decide passage boundaries (passages are reused only when these match)."""
        return (self.target_words, self.max_words, self.overlap_sentences)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for the manifest)."""
        data = dataclasses.asdict(self)
        data["synonyms"] = str(self.synonyms) if self.synonyms is not None else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexSettings:
        """The inverse of ``to_json``; unknown keys are an error (a manifest from another program).

        Raises:
            SettingsError: on unknown keys or invalid values.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SettingsError(f"unknown settings {unknown}")
        values = dict(data)
        if values.get("synonyms") is not None:
            values["synonyms"] = Path(values["synonyms"])
        return cls(**values)
