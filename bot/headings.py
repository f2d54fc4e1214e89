"""The documents' own questions: "What causes brittle diabetes? There are multiple causes ..." answers
a member who asks what causes brittle diabetes.

Many of our pages (GARD's above all) are written as questions, each followed by its answer. Asked the
same question, the reader alone is unsure (the answer is often a list or a table of symptoms, far from
the short spans it was trained on), so the bot declined most of them (``bench/probe_medquad_style.py``:
43 of its 66 section questions). A member's question that asks the same kind of thing (symptoms,
causes, treatment, diagnosis, inheritance) about the same subject as one of the documents' questions
is read in the text that follows it.

The match is on words, not vectors, on purpose: the subject must be the very same words ("MODY type 3"
is not "MODY type 5", which a sentence encoder finds nearly identical), and the kind must agree.
Pure functions and one immutable lookup table; no model, no telegram.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.definitions import Source, by_retrieval_rank, term_key
from retrieval import Passage
from retrieval.passages import split_sentences

# What a question asks about, by the stems of the words that say so (``term_key`` words: lower case,
# singular). "genetic testing" is not "inherited": only the stems below count.
KINDS: dict[str, tuple[str, ...]] = {
    "symptoms": ("symptom", "sign"),
    "causes": ("cause",),
    "treatment": ("treat", "therap", "manag"),
    "diagnosis": ("diagnos",),
    "inheritance": ("inherit",),
}
# Words that carry no subject: question words, function words, and how members pad their questions
# (as ``term_key`` writes them: "does" is "doe").
_NOT_SUBJECT = frozenset(
    """
    what how is are do doe can could might may who when where why which should be been
    there any of for to with in on and or a an the my i me we our your you people person
    someone it this that main common usual usually typical typically available best way
    """.split()  # noqa: SIM905 - a word list reads better than 60 quoted strings
)


# "The Human Phenotype Ontology provides the following list of signs and symptoms for X." opens the
# symptoms section of every GARD page, and a table follows, flattened to text ("Hypothyroidism 90% ...
# Approximate number of patients ..."): the reader's spans there are table cells, not answers (14 of
# 28 section answers of bench/probe_medquad_style.py were), so the introduction answers, with the link.
_INTRODUCES_TABLE = re.compile(r"\bthe following (?:list|table)\b|\bthe table below\b", re.IGNORECASE)


@dataclass(frozen=True)
class Asked:
    """What a question asks: its kind and its subject (a ``term_key``-style word set)."""

    kind: str
    subject: frozenset[str]


def asked(question: str) -> Asked | None:
    """The kind and subject of a question, or None when it asks none of ``KINDS`` or names no subject.

    >>> asked("What causes brittle diabetes?") == asked("what causes Brittle Diabetes ?")
    True
    >>> asked("How might brittle diabetes be treated?").kind
    'treatment'
    """
    words = term_key(question)
    kinds = {kind for kind, stems in KINDS.items() for w in words if w.startswith(stems)}
    if len(kinds) != 1:  # none, or two kinds at once ("how is it diagnosed and treated?"): not ours
        return None
    (kind,) = kinds
    subject = frozenset(w for w in words if w not in _NOT_SUBJECT and not w.startswith(KINDS[kind]))
    return Asked(kind, subject) if subject else None


@dataclass(frozen=True)
class Headings:
    """Every question a document asks itself, by what it asks, with the text that answers it."""

    sections: dict[Asked, tuple[Source, ...]]

    @classmethod
    def from_passages(cls, passages: Iterable[Passage]) -> Headings:
        sections: dict[Asked, list[Source]] = {}
        seen: set[tuple[str, int]] = set()  # overlapping passages repeat a heading: keep its first
        for passage in passages:
            for source, heading in _sections(passage):
                where = (passage.doc_id, passage.start + source.start)
                what = asked(heading)
                if what is None or where in seen:
                    continue
                seen.add(where)
                sections.setdefault(what, []).append(source)
        return cls({what: tuple(found) for what, found in sections.items()})

    def sources(self, question: str, retrieved_doc_ids: Sequence[str] = ()) -> list[Source]:
        """The texts that answer the documents' own questions asking what ``question`` asks, the
        document retrieval ranks higher first ([]: none)."""
        what = asked(question)
        return by_retrieval_rank(self.sections.get(what, ()) if what else (), retrieved_doc_ids)


def _sections(passage: Passage) -> list[tuple[Source, str]]:
    """Each question sentence of a passage with the text after it, up to the next question sentence;
    a section that opens by introducing a table or list is answered by that sentence alone."""
    sentences = split_sentences(passage.text)
    questions = [i for i, (s, e) in enumerate(sentences) if passage.text[s:e].endswith("?")]
    result = []
    for n, i in enumerate(questions):
        end_at = questions[n + 1] if n + 1 < len(questions) else len(sentences)
        if end_at == i + 1:  # a question answered by nothing (in this passage)
            continue
        start, end = sentences[i + 1][0], sentences[end_at - 1][1]
        heading = passage.text[sentences[i][0] : sentences[i][1]]
        first_end = sentences[i + 1][1]
        if _INTRODUCES_TABLE.search(passage.text[start:first_end]):
            result.append((Source(passage, start, first_end, whole=True), heading))
        else:
            result.append((Source(passage, start, end), heading))
    return result
