"""Documents -> passages -> BM25 index. Imports neither torch nor telegram nor the other packages.

The interface the bot codes against::

    report = build_index(docs_dir, index_dir, settings)   # IndexReport; atomic rebuild
    index = load_index(index_dir)                          # BM25Index; IndexLoadError if unusable
    index.search(query, top_k=5)                           # list[ScoredPassage], best first

The names load lazily (PEP 562): ``from retrieval import Passage`` must not pull in rank_bm25, bs4 and
the stemmer, because the bot's store and formatting only need the passage types.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "BM25Index": "retrieval.index",
    "IndexBuildError": "retrieval.errors",
    "IndexLoadError": "retrieval.errors",
    "IndexManifest": "retrieval.store",
    "IndexReport": "retrieval.store",
    "IndexSettings": "retrieval.settings",
    "Passage": "retrieval.passages",
    "RetrievalError": "retrieval.errors",
    "ScoredPassage": "retrieval.passages",
    "SkippedFile": "retrieval.ingest",
    "build_index": "retrieval.store",
    "load_index": "retrieval.store",
}

__all__ = [
    "BM25Index",
    "IndexBuildError",
    "IndexLoadError",
    "IndexManifest",
    "IndexReport",
    "IndexSettings",
    "Passage",
    "RetrievalError",
    "ScoredPassage",
    "SkippedFile",
    "build_index",
    "load_index",
]

if TYPE_CHECKING:
    from retrieval.errors import IndexBuildError, IndexLoadError, RetrievalError
    from retrieval.index import BM25Index
    from retrieval.ingest import SkippedFile
    from retrieval.passages import Passage, ScoredPassage
    from retrieval.settings import IndexSettings
    from retrieval.store import IndexManifest, IndexReport, build_index, load_index


def __getattr__(name: str) -> Any:
    """Import the module behind ``name`` on first use, then cache the name here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'retrieval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
