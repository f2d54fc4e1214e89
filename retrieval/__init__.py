"""Documents -> passages -> BM25 index. Imports neither torch nor telegram nor the other packages."""

from retrieval.passages import Passage, ScoredPassage

__all__ = ["Passage", "ScoredPassage"]
