"""Documents -> passages -> BM25 index. Imports neither torch nor telegram nor the other packages.

The interface the bot codes against::

    report = build_index(docs_dir, index_dir, settings)   # IndexReport; atomic rebuild
    index = load_index(index_dir)                          # BM25Index; IndexLoadError if unusable
    index.search(query, top_k=5)                           # list[ScoredPassage], best first

Hybrid (BM25 + dense) search: build and load with an encoder (``SentenceEncoder()``, all-MiniLM-L6-v2)::

    build_index(docs_dir, index_dir, settings, encoder=encoder)   # passage vectors in the generation
    index = load_index(index_dir, encoder)                         # HybridIndex
    index.search(query, top_k=5, mode="hybrid")                    # or "bm25", "dense"
"""

from retrieval.encoder import EncoderError, SentenceEncoder, TextEncoder
from retrieval.errors import IndexBuildError, IndexLoadError, RetrievalError
from retrieval.hybrid import HybridIndex, HybridSettings, RetrievalMode
from retrieval.index import BM25Index
from retrieval.ingest import SkippedFile
from retrieval.manifest import IndexManifest
from retrieval.passages import Passage, ScoredPassage
from retrieval.settings import IndexSettings
from retrieval.store import IndexReport, build_index, load_index

__version__ = "0.1.0"

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
    "RetrievalError",
    "RetrievalMode",
    "ScoredPassage",
    "SentenceEncoder",
    "SkippedFile",
    "TextEncoder",
    "build_index",
    "load_index",
]
