"""The group's own FAQ: admin-written question/answer pairs, matched before the documents are searched.

A member's question is embedded with the same sentence encoder as dense retrieval (all-MiniLM-L6-v2,
unit vectors, so a dot product is the cosine similarity it was trained for) and compared with every
FAQ question; the closest one answers when its similarity reaches the threshold. The threshold was
measured on paraphrases written for the purpose (``data/faq-paraphrases.json``,
``bench/tune_faq_threshold.py``; figures in README.md, "Benchmarks").

No telegram here. The encoder loads on the first question asked while the FAQ holds an entry: a
helpline without an FAQ never pays for it.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)

# Measured by bench/tune_faq_threshold.py on data/faq-paraphrases.json with all-MiniLM-L6-v2 (see the
# README's Benchmarks table): the lowest threshold at which no off-topic probe matched an entry.
TUNED_FAQ_THRESHOLD = 0.62
MAX_FAQ_QUESTION_CHARS = 300
MAX_FAQ_ANSWER_CHARS = 3000
_PUNCTUATION = re.compile(r"[^\w\s]")


class Encoder(Protocol):
    """What the matcher needs: unit vectors for texts (``retrieval.SentenceEncoder`` or a fake)."""

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class FaqEntry:
    """One FAQ entry as stored.

    Attributes:
        id: the number admins see in ``/faq list`` and pass to ``/faq remove``.
        question: the question as the admin wrote it.
        answer: the answer members get.
    """

    id: int
    question: str
    answer: str


@dataclass(frozen=True)
class FaqMatch:
    """The FAQ entry that answers a member's question, and how close the questions are (cosine)."""

    entry: FaqEntry
    similarity: float


def normalise_question(text: str) -> str:
    """Casefolded, NFKC, no punctuation, single spaces: ``When do we meet?`` -> ``when do we meet``."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def parse_faq_add(text: str) -> tuple[str, str]:
    """``QUESTION | ANSWER`` -> (question, answer), checked.

    Args:
        text: what follows ``/faq add``.

    Returns:
        The stripped question and answer.

    Raises:
        ValueError: no ``|``, an empty side, or a side over its length limit; the message says which.
    """
    question, bar, answer = text.partition("|")
    question, answer = question.strip(), answer.strip()
    if not bar or not question or not answer:
        raise ValueError("write it as: /faq add QUESTION | ANSWER")
    if len(question) > MAX_FAQ_QUESTION_CHARS:
        raise ValueError(f"the question is {len(question)} characters; at most {MAX_FAQ_QUESTION_CHARS}")
    if len(answer) > MAX_FAQ_ANSWER_CHARS:
        raise ValueError(f"the answer is {len(answer)} characters; at most {MAX_FAQ_ANSWER_CHARS}")
    return question, answer


class FaqMatcher:
    """Finds the FAQ entry closest to a question.

    Args:
        entries: returns the current entries (``Store.faq_entries``); read on every question, so an
            admin's ``/faq add`` counts from the next question on.
        encoder_factory: builds the encoder on first need (the entries' vectors are cached by text).
        threshold: the least cosine similarity that counts as the same question.
    """

    def __init__(
        self,
        entries: Callable[[], list[FaqEntry]],
        encoder_factory: Callable[[], Any],
        threshold: float = TUNED_FAQ_THRESHOLD,
    ):
        if not -1.0 <= threshold <= 1.0:
            raise ValueError(f"the FAQ threshold must be a cosine similarity in [-1, 1], got {threshold}")
        self._entries = entries
        self._encoder_factory = encoder_factory
        self._encoder: Any = None
        self.threshold = threshold
        self._vectors: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    @property
    def encoder(self) -> Any:
        """The sentence encoder (built on first use)."""
        with self._lock:
            if self._encoder is None:
                self._encoder = self._encoder_factory()
            return self._encoder

    def match(self, question: str) -> FaqMatch | None:
        """The entry whose question is closest to ``question``, when it is close enough.

        Args:
            question: the member's question.

        Returns:
            The match, or None (no entries, or none reaches the threshold).
        """
        entries = self._entries()
        if not entries:
            return None
        wanted = normalise_question(question)
        for entry in entries:  # the very same words need no model
            if normalise_question(entry.question) == wanted:
                return FaqMatch(entry, 1.0)
        similarities = self.similarities(question, entries)
        best = int(np.argmax(similarities))
        if similarities[best] < self.threshold:
            return None
        return FaqMatch(entries[best], float(similarities[best]))

    def similarities(self, question: str, entries: Sequence[FaqEntry]) -> np.ndarray:
        """How close ``question`` is to each entry (in that order): the higher cosine similarity of its
        embedding with the entry's question alone and with the question followed by the answer.

        The answer's words catch paraphrases that name what the answer says ("what time are the
        meetings?" for "When do we meet?" -> "... at 7 pm") that the question alone misses; the
        question alone keeps a long answer from drowning it (bench/tune_faq_threshold.py compares them).
        """
        encoder = self.encoder
        texts = [(entry.question, f"{entry.question} {entry.answer}") for entry in entries]
        missing = [
            text for text in dict.fromkeys(t for pair in texts for t in pair) if text not in self._vectors
        ]
        if missing:
            for text, vector in zip(missing, encoder.encode(missing), strict=True):
                self._vectors[text] = vector
        query = encoder.encode([question])[0]
        return np.array(
            [max(float(self._vectors[q] @ query), float(self._vectors[qa] @ query)) for q, qa in texts],
            dtype=np.float32,
        )
