"""The quote an answer is shown with: the sentence(s) of the passage around the answer span, kept short.

Sentences come from ``retrieval.passages.split_sentences``, the splitter that also cuts the documents
into passages (it knows "e.g." and "Dr." do not end a sentence). A quote longer than ``MAX_QUOTE_CHARS``
is cut at sentence bounds around the span; only a single sentence longer than that is cut inside, at
word bounds, with an ellipsis, keeping the answer in view.
"""

from __future__ import annotations

from retrieval.passages import split_sentences

# About three lines on a phone: the answer's context, not a wall of text.
MAX_QUOTE_CHARS = 300
ELLIPSIS = "…"


def quote_around(text: str, start: int, end: int, max_chars: int = MAX_QUOTE_CHARS) -> str:
    """The sentence(s) of ``text`` that hold ``text[start:end]``, at most ``max_chars`` long (about).

    Args:
        text: the passage text.
        start: character offset of the span.
        end: character offset just past the span.
        max_chars: the longest quote; one sentence longer than this is trimmed around the span.

    Returns:
        The quote, stripped.
    """
    sentences = split_sentences(text) or [(0, len(text))]
    covering = [(s, e) for s, e in sentences if s < end and e > start] or [
        min(sentences, key=lambda se: abs(se[0] - start))
    ]
    begin, finish = covering[0][0], covering[-1][1]
    if finish - begin <= max_chars:
        return text[begin:finish].strip()
    return _trim(text, begin, finish, start, end, max_chars)


def _trim(text: str, begin: int, finish: int, start: int, end: int, max_chars: int) -> str:
    """A window of ``max_chars`` around the span inside ``text[begin:finish]``, cut at spaces."""
    room = max(max_chars - (end - start), 0)
    left = max(begin, start - room // 2)
    right = min(finish, end + (room - (start - left)))
    left = max(begin, min(left, right - max_chars))
    if left > begin:
        space = text.find(" ", left, start)
        left = space + 1 if space >= 0 else left
    if right < finish:
        space = text.rfind(" ", end, right)
        right = space if space >= 0 else right
    prefix = ELLIPSIS if left > begin else ""
    suffix = ELLIPSIS if right < finish else ""
    return f"{prefix}{text[left:right].strip()}{suffix}"
