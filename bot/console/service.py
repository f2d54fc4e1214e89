"""The console's state and the work behind its pages: one object the routes call.

``Console`` holds the bot's settings, the console's database records, the bot's own store (the
questions up for review), the document library, the authenticator and the retraining job. The routes
in ``bot.console.app`` stay thin: parse, call a method here, render.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from bot.config import Settings
from bot.console.auth import Authenticator
from bot.console.documents import DocumentLibrary
from bot.console.export import export_document
from bot.console.jobs import TrainingJobs
from bot.console.records import Annotation, ConsoleRecords, Review, SpanError
from bot.store import ReviewItem, Store

logger = logging.getLogger(__name__)

# Passages shown for a search in the feedback queue.
SEARCH_RESULTS = 5


def paragraphs(text: str) -> list[tuple[int, str]]:
    """``(offset, paragraph)`` of each blank-line-separated paragraph of an ingested text.

    The page shows one element per paragraph carrying its offset, so a selection's position in the
    stored text is the paragraph's offset plus the offset inside it, whatever the browser does with
    the whitespace between the elements.
    """
    result, offset = [], 0
    for block in text.split("\n\n"):
        result.append((offset, block))
        offset += len(block) + 2
    return result


class Console:
    """Everything the console's routes work on.

    Args:
        settings: the bot's settings (documents, index, database, model directory).
        records: the console's tables.
        store: the bot's store (questions, feedback, passages read).
        auth: checks the token, session cookies and CSRF tokens.
        jobs: the retraining job runner.
    """

    def __init__(
        self,
        settings: Settings,
        records: ConsoleRecords,
        store: Store,
        auth: Authenticator,
        jobs: TrainingJobs,
    ):
        self.settings = settings
        self.records = records
        self.store = store
        self.auth = auth
        self.jobs = jobs
        self.library = DocumentLibrary(settings.docs_dir)

    def close(self) -> None:
        """Close the database connections."""
        self.records.close()
        self.store.close()

    # --- documents and annotations ------------------------------------------------------------

    def documents_json(self) -> list[dict[str, Any]]:
        """``GET /api/documents``: id, title, source, size and annotation count of each document."""
        counts = self.records.annotation_counts()
        return [
            {**dataclasses.asdict(d), "annotations": counts.get(d.doc_id, 0)} for d in self.library.list()
        ]

    def document_json(self, doc_id: str) -> dict[str, Any] | None:
        """``GET /api/documents/{id}``: the document with the text that annotation offsets index into."""
        doc = self.library.get(doc_id)
        if doc is None:
            return None
        return {
            "doc_id": doc.doc_id,
            "title": doc.title,
            "source": doc.source,
            "hash": doc.hash,
            "text": doc.text,
        }

    def save_annotation(
        self, annotation_id: int | None, doc_id: str, question: str, answer_start: int | None,
        answer_text: str | None, unanswerable: bool,
    ) -> Annotation | None:  # fmt: skip
        """Add (``annotation_id`` None) or replace an annotation, verified against the document's text.

        Returns:
            The annotation; None when the document (or the annotation to replace) does not exist.

        Raises:
            SpanError: the question is empty, or the span does not match the text.
        """
        doc = self.library.get(doc_id)
        if doc is None:
            return None
        if unanswerable:
            answer_start = answer_text = None
        elif answer_text is None and answer_start is None:
            raise SpanError(
                "answer_text", "answer_text is missing: select the answer, or mark it unanswerable"
            )
        if annotation_id is None:
            return self.records.add_annotation(doc, question, answer_start, answer_text)
        return self.records.update_annotation(annotation_id, doc, question, answer_start, answer_text)

    def save_annotation_form(self, form: dict[str, str]) -> Annotation | None:
        """The annotate page's form (strings) -> ``save_annotation``."""
        start = form.get("answer_start", "").strip()
        try:
            answer_start = int(start) if start else None
        except ValueError:
            raise SpanError("answer_start", f"answer_start must be an integer, got {start!r}") from None
        edit = form.get("annotation_id", "").strip()
        return self.save_annotation(
            int(edit) if edit.isdigit() else None, form.get("doc_id", ""), form.get("question", ""),
            answer_start, form.get("answer_text") or None, form.get("unanswerable") == "on",
        )  # fmt: skip

    def annotate_context(self, doc_id: str | None, edit: int | None) -> dict[str, Any]:
        """What the annotate page shows: documents with progress, the chosen one, its annotations."""
        documents = self.documents_json()
        doc = self.library.get(doc_id) if doc_id else None
        # Without a document chosen, the page lists every annotation (newest first).
        annotations = self.records.annotations(doc.doc_id) if doc else self.records.annotations()[::-1]
        editing = next((a for a in annotations if a.id == edit), None)
        return {
            "documents": documents,
            "total_annotations": sum(d["annotations"] for d in documents),
            "doc": doc,
            "paragraphs": paragraphs(doc.text) if doc else [],
            "annotations": annotations,
            "editing": editing,
            "stale": {a.id for a in annotations if doc and a.doc_hash != doc.hash},
        }

    # --- feedback -----------------------------------------------------------------------------

    def _items(self) -> dict[int, ReviewItem]:
        return {item.question_id: item for item in self.store.questions_for_review()}

    def feedback_context(self, query: str | None, search_for: int | None = None) -> dict[str, Any]:
        """The feedback page: open questions with their passages, search results (shown under the
        question ``search_for``), what was reviewed."""
        items, reviews = self._items(), self.records.reviews()
        found, search_error = ([], None)
        if query and query.strip():
            found, search_error = self.search(query.strip())
        return {
            "open": [item for qid, item in items.items() if qid not in reviews],
            "reviewed": [(items[qid], r) for qid, r in reviews.items() if qid in items],
            "query": query or "",
            "search_for": search_for,
            "found": found,
            "search_error": search_error,
        }

    def feedback_json(self) -> list[dict[str, Any]]:
        """``GET /api/feedback``: questions up for review (member ids are never included)."""
        reviews = self.records.reviews()
        result = []
        for item in self._items().values():
            record = dataclasses.asdict(item)
            record["review"] = (
                dataclasses.asdict(reviews[item.question_id]) if item.question_id in reviews else None
            )
            result.append(record)
        return result

    def search(self, query: str) -> tuple[list[Any], str | None]:
        """BM25 search over the served index (the passages a corrected answer may come from)."""
        from retrieval import IndexLoadError, load_index  # noqa: PLC0415 - loads rank_bm25 on first search

        try:
            index = load_index(self.settings.index_dir)
        except IndexLoadError as e:
            return [], str(e)
        return [hit.passage for hit in index.search(query, top_k=SEARCH_RESULTS)], None

    def _find_passage(self, item: ReviewItem, passage_id: str) -> Any:
        """A passage by id: one the bot read for the question, else one in the index."""
        for passage in item.contexts:
            if passage.id == passage_id:
                return passage
        from retrieval import IndexLoadError  # noqa: PLC0415
        from retrieval.store import load_index_files  # noqa: PLC0415

        try:
            _, passages = load_index_files(self.settings.index_dir)
        except IndexLoadError:
            passages = []
        found = next((p for p in passages if p.id == passage_id), None)
        if found is None:
            raise SpanError(
                "passage_id", f"passage_id {passage_id!r} is neither read for the question nor in the index"
            )
        return found

    def review(
        self,
        question_id: int,
        verdict: str,
        passage_id: str | None,
        answer_start: int | None,
        answer_text: str | None,
    ) -> Review:
        """Record the verdict on one question up for review.

        Raises:
            KeyError: no such question up for review.
            SpanError: a bad verdict, passage or span.
        """
        item = self._items()[question_id]
        passage = self._find_passage(item, passage_id) if verdict == "answer" and passage_id else None
        return self.records.review(question_id, verdict, passage, answer_start, answer_text)

    # --- export and retraining ----------------------------------------------------------------

    def export(self) -> dict[str, Any]:
        """``GET /api/export``: the SQuAD v2.0 document of all annotations and reviews."""
        return export_document(self.records, self.store)

    def train_context(self) -> dict[str, Any]:
        """The retrain page: the job's status and the paths it uses."""
        settings = self.settings
        return {
            "job": self.jobs.status(),
            "questions": len(self.records.annotations()) + len(self.records.reviews()),
            "model_dir": settings.model_dir,
            "train_data": settings.console_train_data,
            "dev_data": settings.console_dev_data,
            "train_args": settings.console_train_args,
        }

    def start_training(self) -> str | None:
        """Start a retraining job; returns why not, or None when it started."""
        return self.jobs.start(self.export())

    def rollback(self) -> str | None:
        """Serve the previous model again; returns why not, or None."""
        return self.jobs.rollback()
