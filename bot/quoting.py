"""The sentence an answer is quoted from: the run of sentences of a passage around the answer span."""

from __future__ import annotations

import re

# A sentence ends at . ! or ? followed by whitespace (good enough for the bundled NIH prose).
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


def sentence_around(text: str, start: int, end: int) -> str:
    """The sentence (or run of sentences) of ``text`` that holds ``text[start:end]``.

    Args:
        text: the passage text.
        start: character offset of the span.
        end: character offset just past the span.

    Returns:
        The stripped sentence(s) covering the span.
    """
    begin, finish = 0, len(text)
    for match in _SENTENCE_BREAK.finditer(text):
        if match.end() <= start:
            begin = match.end()
        elif match.start() >= end:
            finish = match.start()
            break
    return text[begin:finish].strip()
