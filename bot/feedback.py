"""``bot export-feedback``: the questions members were let down on, as SQuAD v2 for an admin to correct.

The continual-learning loop: questions voted "not helpful" and questions the bot did not answer
(``Store.questions_for_review``) come out as a SQuAD v2 file whose contexts are the passages the reader
read for them. Each retrieved passage is one paragraph (a passage retrieved for several questions is
one paragraph with several questions); a question's entry in the paragraph its answer came from has
the bot's answer pre-filled as the span, every other entry is marked unanswerable. The admin fixes the
spans (a span where there is one, unanswerable where there is none) and feeds the file to
``finetune train``; ``finetune check FILE`` accepts it as written.

Question ids are a hash of when the question was asked, its text and the passage, so exporting again
gives the same ids (an admin can merge exports, and ``finetune`` refuses a duplicated id instead of
training on a question twice). Questions stored without their text (``HELPLINE_STORE_QUESTIONS=false``)
cannot be annotated: they are skipped and counted.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.atomic import write_json_atomic
from bot.errors import BadInputError
from bot.store import ReviewItem, Store, StoredPassage

logger = logging.getLogger(__name__)

SQUAD_VERSION = "v2.0"
ID_PREFIX = "helpline-"
# Hex digits of the sha1 kept in a question id: 64 bits, no collisions at a helpline's volume.
ID_HEX_DIGITS = 16


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote (the ``bot export-feedback --json`` document).

    Attributes:
        output: the file written.
        questions: questions exported (each appears once per passage retrieved for it).
        contexts: paragraphs written, one per distinct retrieved passage.
        skipped: questions up for review that could not be exported: stored without their text
            (privacy setting) or with no retrieved passage to annotate.
    """

    output: str
    questions: int
    contexts: int
    skipped: int


def parse_since(value: str) -> str:
    """An ISO date or date-time as the store's UTC timestamp text, for comparing with ``asked_at``.

    Args:
        value: ``2026-11-26`` or ``2026-11-26T08:00`` (naive times are UTC) or with an offset.

    Returns:
        The same instant as ``YYYY-MM-DDTHH:MM:SS.ffffff+00:00``, the format the store writes.

    Raises:
        BadInputError: ``value`` is not an ISO date or date-time.
    """
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BadInputError(f"--since must be an ISO date such as 2026-11-26, got {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def question_id(item: ReviewItem, passage_id: str) -> str:
    """The stable SQuAD id of one (question, passage) pair."""
    key = "\x00".join((item.asked_at, item.question, passage_id)).encode("utf-8")
    return ID_PREFIX + hashlib.sha1(key).hexdigest()[:ID_HEX_DIGITS]


def answer_in(item: ReviewItem, passage: StoredPassage) -> dict[str, Any] | None:
    """The bot's answer as a SQuAD answer in ``passage``, or None when it did not come from there.

    Args:
        item: the reviewed question.
        passage: one of its retrieved passages.

    Returns:
        ``{"text", "answer_start"}`` with ``passage.text[answer_start:]`` starting with ``text``.
    """
    if item.answer is None or item.passage_id != passage.id or item.span_start is None:
        return None
    text = item.answer.strip()
    if not text:
        return None
    start = item.span_start
    if passage.text[start : start + len(text)] != text:
        # The logged offsets do not fit (e.g. a span with surrounding whitespace): look nearby.
        found = passage.text.find(text, max(0, start - len(text)))
        if found < 0:
            logger.warning("question %d: answer not found in passage %s", item.question_id, passage.id)
            return None
        start = found
    return {"text": text, "answer_start": start}


def qa_record(item: ReviewItem, passage: StoredPassage) -> dict[str, Any]:
    """One SQuAD v2 question entry, with the bot's view kept beside it for the annotator."""
    answer = answer_in(item, passage)
    return {
        "id": question_id(item, passage.id),
        "question": item.question,
        "is_impossible": answer is None,
        "answers": [answer] if answer else [],
        # Extra keys (finetune ignores them): what the bot said, so the admin knows what went wrong.
        "helpline": {
            "question_id": item.question_id,
            "asked_at": item.asked_at,
            "bot_answer": item.answer,
            "confidence": round(item.confidence, 4),
            "not_helpful_votes": item.not_helpful_votes,
            "bm25_score": round(passage.bm25_score, 4),
        },
    }


def new_article(passage: StoredPassage) -> dict[str, Any]:
    """An empty SQuAD article for the passage's document (title and source kept for the annotator)."""
    return {"title": passage.title, "doc": passage.doc_id, "source": passage.source, "paragraphs": []}


def build_document(items: Iterable[ReviewItem]) -> dict[str, Any]:
    """The SQuAD v2 document: one article per source document, one paragraph per distinct passage.

    Args:
        items: the reviewed questions (each with its retrieved passages).

    Returns:
        ``{"version", "data": [{"title", "doc", "source", "paragraphs": [{"context", "passage_id",
        "qas"}]}]}``, in the order questions were asked.
    """
    articles: dict[str, dict[str, Any]] = {}
    paragraphs: dict[str, dict[str, Any]] = {}
    for item in items:
        for passage in item.contexts:
            if passage.id not in paragraphs:
                paragraph = {"context": passage.text, "passage_id": passage.id, "qas": []}
                paragraphs[passage.id] = paragraph
                article = articles.setdefault(passage.doc_id, new_article(passage))
                article["paragraphs"].append(paragraph)
            paragraphs[passage.id]["qas"].append(qa_record(item, passage))
    return {"version": SQUAD_VERSION, "data": list(articles.values())}


def select_items(items: Sequence[ReviewItem], since: str | None) -> tuple[list[ReviewItem], int]:
    """The items asked at or after ``since`` that have passages to annotate, and how many had none."""
    recent = [item for item in items if since is None or item.asked_at >= since]
    usable = [item for item in recent if item.contexts]
    return usable, len(recent) - len(usable)


def export_feedback(store: Store, out: Path, since: str | None = None) -> ExportReport:
    """Write the questions up for review as a SQuAD v2 file (atomically).

    Args:
        store: the bot's database.
        out: the file to write (replaced when it exists).
        since: only questions asked at or after this store timestamp (``parse_since``'s output).

    Returns:
        Counts of what was written and skipped.
    """
    items, without_contexts = select_items(store.questions_for_review(), since)
    without_text = store.count_review_without_text(since or "")
    document = build_document(items)
    write_json_atomic(out, document)
    contexts = sum(len(article["paragraphs"]) for article in document["data"])
    if without_text:
        logger.info("skipped %d questions stored without their text", without_text)
    return ExportReport(str(out), len(items), contexts, without_text + without_contexts)
