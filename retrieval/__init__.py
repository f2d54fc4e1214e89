"""Documents -> passages -> BM25 index. Imports neither torch nor telegram nor the other packages.

The interface the bot codes against::

    report = build_index(docs_dir, index_dir, settings)   # IndexReport; atomic rebuild
    index = load_index(index_dir)                          # BM25Index; IndexLoadError if unusable
    index.search(query, top_k=5)                           # list[ScoredPassage], best first
"""

from retrieval.errors import IndexBuildError, IndexLoadError, RetrievalError
from retrieval.index import BM25Index
from retrieval.ingest import SkippedFile
from retrieval.passages import Passage, ScoredPassage
from retrieval.settings import IndexSettings
from retrieval.store import IndexManifest, IndexReport, build_index, load_index

__version__ = "0.1.0"

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
