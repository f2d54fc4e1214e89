"""The console's SQuAD v2.0 export: every annotation and every reviewed feedback question.

- An annotation becomes a question on a paragraph whose ``context`` is the document text it was made on
  (the ingested text, see ``bot.console.documents``); one article per document, one paragraph per
  version of its text.
- A feedback question reviewed as *answer* becomes a question on the passage the admin selected it in
  (the passage's text is the context); *not in our documents* becomes an unanswerable question on
  every passage the bot read for it (they are the hard negatives the reader must learn to decline);
  *dismissed* ones are left out.

``finetune check`` accepts the result with nothing rejected or repaired: every span was verified
against its context when it was saved.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.atomic import write_json_atomic
from bot.console.records import Annotation, ConsoleRecords, Review
from bot.store import ReviewItem, Store

SQUAD_VERSION = "v2.0"


def _qa(qid: str, question: str, answer_start: int | None, answer_text: str | None) -> dict[str, Any]:
    answers = [] if answer_text is None else [{"text": answer_text, "answer_start": answer_start}]
    return {"id": qid, "question": question, "is_impossible": not answers, "answers": answers}


def _add(
    articles: dict[str, dict[str, Any]], paragraphs: dict[tuple[str, str], dict[str, Any]],
    doc_id: str, title: str, context: str, qa: dict[str, Any],
) -> None:  # fmt: skip
    """Put ``qa`` into the paragraph of ``context`` in the article of ``doc_id`` (made when missing)."""
    article = articles.setdefault(doc_id, {"title": title, "doc": doc_id, "paragraphs": []})
    paragraph = paragraphs.get((doc_id, context))
    if paragraph is None:
        paragraph = paragraphs[(doc_id, context)] = {"context": context, "qas": []}
        article["paragraphs"].append(paragraph)
    paragraph["qas"].append(qa)


def build_export(
    annotations: Iterable[Annotation],
    texts: dict[str, str],
    reviews: dict[int, Review],
    items: dict[int, ReviewItem],
) -> dict[str, Any]:
    """The SQuAD v2.0 document.

    Args:
        annotations: the annotations.
        texts: doc_hash -> the document text each annotation was made on.
        reviews: question_id -> the admin's verdict.
        items: question_id -> the question up for review (its text and the passages the bot read).

    Returns:
        ``{"version": "v2.0", "data": [{"title", "doc", "paragraphs": [{"context", "qas"}]}]}``.
    """
    articles: dict[str, dict[str, Any]] = {}
    paragraphs: dict[tuple[str, str], dict[str, Any]] = {}
    for a in annotations:
        qa = _qa(f"console-{a.id}", a.question, a.answer_start, a.answer_text)
        _add(articles, paragraphs, a.doc_id, a.title, texts[a.doc_hash], qa)
    for question_id, review in reviews.items():
        item = items.get(question_id)
        if item is None or review.verdict == "dismissed":
            continue
        if review.verdict == "answer":
            qid = f"review-{question_id}"
            qa = _qa(qid, item.question, review.answer_start, review.answer_text)
            _add(articles, paragraphs, review.doc_id or "", review.title or "", review.context or "", qa)
            continue
        for passage in item.contexts:
            qa = _qa(f"review-{question_id}-{passage.id}", item.question, None, None)
            _add(articles, paragraphs, passage.doc_id, passage.title, passage.text, qa)
    return {"version": SQUAD_VERSION, "data": list(articles.values())}


def export_document(records: ConsoleRecords, store: Store) -> dict[str, Any]:
    """The export of everything in the database (see ``build_export``)."""
    annotations = records.annotations()
    texts = {h: records.snapshot_text(h) or "" for h in {a.doc_hash for a in annotations}}
    items = {item.question_id: item for item in store.questions_for_review()}
    return build_export(annotations, texts, records.reviews(), items)


def count_questions(document: dict[str, Any]) -> int:
    """Questions in a SQuAD document."""
    return sum(len(p["qas"]) for article in document["data"] for p in article["paragraphs"])


def write_export(records: ConsoleRecords, store: Store, out: Path) -> int:
    """Write the export to ``out`` atomically; returns the number of questions written."""
    document = export_document(records, store)
    write_json_atomic(out, document)
    return count_questions(document)
