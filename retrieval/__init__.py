"""Documents -> passages -> BM25 index. Imports neither torch nor telegram nor the other packages.

The interface the bot codes against::

    report = build_index(docs_dir, index_dir, settings)   # IndexReport; atomic rebuild
    index = load_index(index_dir)                          # BM25Index; IndexLoadError if unusable
    index.search(query, top_k=5)                           # list[ScoredPassage], best first

Hybrid (BM25 + dense) search: build and load with an encoder (``SentenceEncoder()``, all-MiniLM-L6-v2)::

    build_index(docs_dir, index_dir, settings, encoder=encoder)   # passage vectors in the generation
    index = load_index(index_dir, encoder)                         # HybridIndex
    index.search(query, top_k=5, mode="hybrid")                    # or "bm25", "dense"

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
    "EncoderError": "retrieval.encoder",
    "HybridIndex": "retrieval.hybrid",
    "HybridSettings": "retrieval.hybrid",
    "IndexBuildError": "retrieval.errors",
    "IndexLoadError": "retrieval.errors",
    "IndexManifest": "retrieval.manifest",
    "IndexReport": "retrieval.store",
    "IndexSettings": "retrieval.settings",
    "Passage": "retrieval.passages",
    "QueryTunedEncoder": "retrieval.encoder",
    "RetrievalError": "retrieval.errors",
    "RetrievalMode": "retrieval.hybrid",
    "ScoredPassage": "retrieval.passages",
    "SentenceEncoder": "retrieval.encoder",
    "SkippedFile": "retrieval.ingest",
    "TextEncoder": "retrieval.encoder",
    "build_index": "retrieval.store",
    "load_index": "retrieval.store",
}

__all__ = [
    "BM25Index",
    "EncoderError",
    "HybridIndex",
    "HybridSettings",
    "IndexBuildError",
    "IndexLoadError",
    "IndexManifest",
    "IndexReport",
    "IndexSettings",
    "Passage",
    "QueryTunedEncoder",
    "RetrievalError",
    "RetrievalMode",
    "ScoredPassage",
    "SentenceEncoder",
    "SkippedFile",
    "TextEncoder",
    "build_index",
    "load_index",
]

if TYPE_CHECKING:
    from retrieval.encoder import EncoderError, QueryTunedEncoder, SentenceEncoder, TextEncoder
    from retrieval.errors import IndexBuildError, IndexLoadError, RetrievalError
    from retrieval.hybrid import HybridIndex, HybridSettings, RetrievalMode
    from retrieval.index import BM25Index
    from retrieval.ingest import SkippedFile
    from retrieval.manifest import IndexManifest
    from retrieval.passages import Passage, ScoredPassage
    from retrieval.settings import IndexSettings
    from retrieval.store import IndexReport, build_index, load_index


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
