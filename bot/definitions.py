"""Definition questions ("what is brittle diabetes?") answered from the sentence that defines the term.

Our documents define their terms in plain sentences: "Brittle diabetes is characterized by severe
instability of blood glucose levels ...", "Summary : A1C is a blood test for type 2 diabetes and
prediabetes.". Asked what a term is, the reader alone does badly: it reads passages with the whole
question and its calibrated confidence stays low for long, definitional spans, so the bot declined
most "What is (are) <title> ?" questions of the MedQuAD-style probe (64 of 106) and answered 12 from
a wrong page (``bench/probe_medquad_style.py``). When the question asks what a term is and some
document has a sentence whose subject *is* that term, that sentence answers: the reader then picks
the span in that one sentence.

The match is on words, not vectors, on purpose: "what is type 1 diabetes" must not take the sentence
that defines type 2 diabetes, and a near miss (a topic no sentence defines, "what is a normal a1c")
goes to the ordinary path (retrieve, read, calibrated decision). Pure functions and one immutable
lookup table; no model, no telegram.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from retrieval import Passage
from retrieval.passages import split_sentences
from retrieval.synonyms import SynonymTable

# "what is X", "what's X", "what is (are) X" (MedQuAD's form), "what does X mean", "define X", ...
_QUESTION = re.compile(
    r"""^\s*(?:[^,;:?.!]{1,60}[,;:]\s+)?  # "sorry newbie q, what does hypo mean"
    (?:(?:so|ok|okay|hi|hey|hello|um+|and|but)[\s,]+)*
    (?:
        (?:what\s*(?:is\s*\(are\)|is|are|'s|’s)|whats|define|definition\s+of|meaning\s+of
           |what\s+is\s+meant\s+by|tell\s+me\s+about|explain)\s+(?P<topic>.+?)
      | what\s+(?:does|do)\s+(?P<meant>.+?)\s+mean
    )\s*[?.!]*\s*$""",
    re.IGNORECASE | re.VERBOSE,
)
# Words members add that do not change the term asked about.
_FILLER = re.compile(
    r"\b(?:exactly|actually|really|please|again|anyway|in\s+(?:simple|plain|easy)\s+(?:words|terms|english))\b",
    re.IGNORECASE,
)
# A sentence that defines its subject: "<subject> [(<ABBR>)] [, also called <alias>,] is|are|means ...",
# but not "<subject> is likely due to ..." or "is caused by ...", which say something else about it.
_DEFINING = re.compile(
    r"""^(?:summary\s*:\s*)?(?:the\s+term\s+)?["“]?(?P<subject>[^"”,;:()?!.]{2,80}?)["”]?\s*
    (?:\((?P<abbreviation>[^()]{1,20})\)\s*)?
    (?:,\s*(?:also\s+(?:called|known\s+as)|formerly\s+called|which\s+is\s+also\s+known\s+by\s+the\s+acronym)
        \s+(?P<alias>[^,]{1,60}),\s*)?
    \b(?:(?:is|are)\s+(?!(?:likely|unlikely|not|unknown|due|caused|possible|important|expensive)\b)
       |means\s+|refers\s+to\s+)\S""",
    re.IGNORECASE | re.VERBOSE,
)
_WORD = re.compile(r"[a-z0-9]+")
_ARTICLES = frozenset({"a", "an", "the"})
# Subjects that name no term: "It is ...", "This means ...", "Your doctor is ...".
_NOT_TERMS = frozenset(
    ["it", "this", "that", "these", "those", "they", "there", "he", "she", "you", "your", "we", "our"]
    + ["my", "his", "her", "its", "one", "which", "what", "who"]
)


def term_key(text: str) -> frozenset[str]:
    """The words that name a term, order-free, without articles or a plural "s" ("Diabetes Type 1",
    "type 1 diabetes" -> the same key; "insulinomas" and "an insulinoma" too)."""
    words = (w for w in _WORD.findall(_FILLER.sub(" ", text.lower())) if w not in _ARTICLES)
    return frozenset(_singular(w) for w in words)


def _singular(word: str) -> str:
    return (
        word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")) else word
    )


def definition_topic(question: str) -> frozenset[str] | None:
    """The key of the term a definition question asks about, or None for any other question.

    >>> sorted(definition_topic("What is (are) Wolfram syndrome ?"))
    ['syndrome', 'wolfram']
    >>> definition_topic("what is a normal a1c for adults?") == term_key("normal a1c for adults")
    True
    >>> definition_topic("how is brittle diabetes treated?") is None
    True
    """
    match = _QUESTION.match(question)
    if match is None:
        return None
    key = term_key(match.group("topic") or match.group("meant"))
    return key if key and not key <= _NOT_TERMS else None


@dataclass(frozen=True)
class Source:
    """A place to read an answer from: ``passage.text[start:end]`` (a defining sentence, a document's
    opening passage, the text after a document's own question). ``whole``: the text itself is the
    answer, with nothing for the reader to pick (the sentence that introduces a table)."""

    passage: Passage
    start: int
    end: int
    whole: bool = False

    @property
    def text(self) -> str:
        return self.passage.text[self.start : self.end]


def _opens_with_question(text: str) -> bool:
    """A passage that opens with a question ("What are the signs and symptoms of X? ...") answers that
    question, not what X is: a document without a summary (many GARD pages) gives no opening."""
    sentences = split_sentences(text)
    return bool(sentences) and text[sentences[0][0] : sentences[0][1]].rstrip().endswith("?")


def defined_terms(sentence: str) -> list[frozenset[str]]:
    """The keys of the terms a sentence defines (subject, its abbreviation, its alias); [] for a
    sentence that defines nothing."""
    match = _DEFINING.match(sentence)
    if match is None:
        return []
    names = (match.group(g) for g in ("subject", "abbreviation", "alias"))
    keys = [term_key(name) for name in names if name]
    return [key for key in keys if key and not key <= _NOT_TERMS]


@dataclass(frozen=True)
class Definitions:
    """Where an index defines its terms.

    Attributes:
        sentences: term key -> the sentences whose subject is that term, in index order.
        openings: term key -> the first passage of each document whose title is that term (unless it
            opens with a question).
        documents: term key -> the ids of the documents whose title is that term.
        synonyms: term key -> the keys of the terms the index's synonym table says mean the same
            ("t1d" -> "type 1 diabetes", "juvenile diabetes", ...): their sources come after the
            term's own.
    """

    sentences: dict[frozenset[str], tuple[Source, ...]]
    openings: dict[frozenset[str], tuple[Source, ...]]
    documents: dict[frozenset[str], frozenset[str]]
    synonyms: dict[frozenset[str], tuple[frozenset[str], ...]] = dataclasses.field(default_factory=dict)

    @classmethod
    def from_passages(cls, passages: Iterable[Passage], synonyms: SynonymTable | None = None) -> Definitions:
        sentences: dict[frozenset[str], list[Source]] = {}
        first: dict[str, Passage] = {}
        seen: set[tuple[str, int]] = set()  # overlapping passages repeat a sentence: keep its first
        for passage in passages:
            if passage.doc_id not in first or passage.start < first[passage.doc_id].start:
                first[passage.doc_id] = passage
            for start, end in split_sentences(passage.text):
                where = (passage.doc_id, passage.start + start)
                terms = [] if where in seen else defined_terms(passage.text[start:end])
                if terms:
                    seen.add(where)
                for key in terms:
                    sentences.setdefault(key, []).append(Source(passage, start, end))
        openings: dict[frozenset[str], list[Source]] = {}
        documents: dict[frozenset[str], set[str]] = {}
        for passage in first.values():
            documents.setdefault(term_key(passage.title), set()).add(passage.doc_id)
            if not _opens_with_question(passage.text):
                openings.setdefault(term_key(passage.title), []).append(Source(passage, 0, len(passage.text)))
        return cls(
            {key: tuple(found) for key, found in sentences.items()},
            {key: tuple(found) for key, found in openings.items()},
            {key: frozenset(ids) for key, ids in documents.items()},
            _equivalent_terms(synonyms.terms if synonyms is not None else ()),
        )

    @classmethod
    def empty(cls) -> Definitions:
        return cls({}, {}, {})

    def sources(self, question: str, retrieved_doc_ids: Sequence[str] = ()) -> list[Source]:
        """Where to read the answer to a definition question, best first ([]: not a definition
        question, or no document defines the term or is about it).

        1. sentences defining the term in a document about it (its title is the term);
        2. the opening passage of a document about it (MedQuAD's "What is (are) X?" answer is there);
        3. sentences defining the term in other documents.

        Within each group: the document retrieval ranks higher first, then document order. Then the
        same for each synonym of the term (``synonyms``).
        """
        topic = definition_topic(question)
        if topic is None:
            return []
        return [
            source
            for term in (topic, *self.synonyms.get(topic, ()))
            for source in self._sources_for(term, retrieved_doc_ids)
        ]

    def _sources_for(self, topic: frozenset[str], retrieved_doc_ids: Sequence[str]) -> list[Source]:
        about = self.documents.get(topic, frozenset())
        defining = self.sentences.get(topic, ())
        return [
            *by_retrieval_rank([s for s in defining if s.passage.doc_id in about], retrieved_doc_ids),
            *by_retrieval_rank(self.openings.get(topic, ()), retrieved_doc_ids),
            *by_retrieval_rank([s for s in defining if s.passage.doc_id not in about], retrieved_doc_ids),
        ]


def _equivalent_terms(groups: Iterable[Sequence[str]]) -> dict[frozenset[str], tuple[frozenset[str], ...]]:
    """Term key -> the keys of the other terms of its synonym groups, in the file's order."""
    equivalents: dict[frozenset[str], list[frozenset[str]]] = {}
    for group in groups:
        keys = list(dict.fromkeys(k for k in (term_key(term) for term in group) if k))
        for key in keys:
            equivalents.setdefault(key, []).extend(k for k in keys if k != key)
    return {key: tuple(dict.fromkeys(others)) for key, others in equivalents.items()}


def by_retrieval_rank(sources: Iterable[Source], retrieved_doc_ids: Sequence[str]) -> list[Source]:
    """``sources``, those of the document retrieval ranks highest first (unretrieved ones last, each
    group in its own order)."""
    rank = {doc: i for i, doc in reversed(list(enumerate(retrieved_doc_ids)))}
    return sorted(sources, key=lambda s: rank.get(s.passage.doc_id, len(rank)))
