"""Fast stand-ins for the reader and the index, for the bot tests and bench/bench_telegram.py.

``FakeReader`` "reads" like a keyword spotter: when the question holds one of its trigger words, a
context holding that trigger's answer phrase yields the phrase as a span with a high score; anything
else yields nothing. ``FakeIndex`` scores passages by shared content words. Both honour the real
interfaces (``finetune.types.Reading``, ``retrieval.ScoredPassage``), so the engine runs its real
fusion and threshold code on them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence

from finetune.types import Reading, Span
from retrieval import Passage, ScoredPassage
from retrieval.passages import content_id
from retrieval.synonyms import SynonymTable

STOPWORDS = frozenset(
    ["a", "an", "and", "are", "can", "do", "does", "how", "i", "in", "is", "it", "my", "of", "on", "or"]
    + ["the", "to", "what", "when", "who", "why", "with"]
)

# (title, source, text, answer phrase the FakeReader finds, question word that triggers it)
CORPUS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Brittle diabetes",
        "https://rarediseases.info.nih.gov/gard/11900/brittle-diabetes",
        "Brittle diabetes is rare. Brittle diabetes is characterized by severe instability of blood glucose"
        " levels. It affects type 1 diabetics almost exclusively.",
        "severe instability of blood glucose levels",
        "characterized",
    ),
    (
        "Insulinoma",
        "https://rarediseases.info.nih.gov/gard/6801/insulinoma",
        "An insulinoma is a tumor of the pancreas that produces too much insulin. Most insulinomas are not"
        " cancerous.",
        "a tumor of the pancreas",
        "insulinoma",
    ),
    (
        "Wolfram syndrome <&>",
        "https://medlineplus.gov/genetics/condition/wolfram-syndrome/?a=1&b=2",
        "Wolfram syndrome is a condition that affects many of the body's systems. The hallmark features"
        " are high blood sugar levels & progressive vision loss.",
        "high blood sugar levels & progressive vision loss",
        "wolfram",
    ),
)
ANSWER_SCORE = 9.0
NO_ANSWER_SCORE = 0.0


def words(text: str) -> set[str]:
    """Lowercase content words of ``text``."""
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOPWORDS}


def corpus_passages() -> list[Passage]:
    """The tiny corpus as passages (ids are content hashes, as in retrieval)."""
    return [
        Passage(content_id(text), text, f"doc-{i}.md", title, source, 0, len(text))
        for i, (title, source, text, *_) in enumerate(CORPUS)
    ]


class FakeIndex:
    """Scores each passage by the number of content words it shares with the query."""

    def __init__(self, passages: Sequence[Passage] | None = None):
        self.passages = list(passages if passages is not None else corpus_passages())
        self.synonyms = SynonymTable()  # none: the fake index matches words only
        self.queries: list[str] = []

    def search(self, query: str, top_k: int = 5) -> list[ScoredPassage]:
        self.queries.append(query)
        query_words = words(query)
        scored = [
            ScoredPassage(p, float(len(query_words & words(p.text + " " + p.title)))) for p in self.passages
        ]
        return sorted((s for s in scored if s.score > 0), key=lambda s: s.score, reverse=True)[:top_k]


class FakeReader:
    """Finds known answer phrases in contexts; counts calls; can be slowed down to test concurrency.

    Args:
        answers: trigger word (lowercase) -> answer phrase; default the corpus's.
        delay_s: seconds each ``read`` sleeps (a stand-in for the forward pass).
        name: shows which reader served an answer after a reload.
    """

    backend = "fake"  # what ``AnswerEngine.backend`` reports for it
    approximate = False  # it reads exactly: the engine never re-reads its close calls

    def __init__(self, answers: Mapping[str, str] | None = None, delay_s: float = 0.0, name: str = "fake"):
        self.answers = dict(answers if answers is not None else {c[4]: c[3] for c in CORPUS})
        self.delay_s = delay_s
        self.name = name
        self.warmed = False
        self.calls: list[tuple[str, int]] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.entered = threading.Event()  # set once a read has started (tests wait on it, not on sleep)

    def warm_up(self) -> None:
        self.warmed = True

    def read(
        self, question: str, contexts: Sequence[str], top_k: int = 1, *, exact: bool = False
    ) -> list[Reading]:
        with self._lock:
            self.calls.append((question, len(contexts)))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.entered.set()
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            phrases = [phrase for word, phrase in self.answers.items() if word in words(question)]
            return [self._read_one(context, phrases) for context in contexts]
        finally:
            with self._lock:
                self.in_flight -= 1

    @staticmethod
    def _read_one(context: str, phrases: Sequence[str]) -> Reading:
        for phrase in phrases:
            start = context.find(phrase)
            if start >= 0:
                span = Span(phrase, start, start + len(phrase), ANSWER_SCORE, 1.0)
                return Reading((span,), NO_ANSWER_SCORE)
        return Reading((), NO_ANSWER_SCORE)
