"""The synonym/abbreviation table applied to queries (``retrieval/synonyms.txt``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from retrieval.errors import RetrievalError
from retrieval.tokenize import tokenize

logger = logging.getLogger(__name__)

Phrase = tuple[str, ...]


@dataclass(frozen=True)
class SynonymTable:
    """Groups of interchangeable phrases, each phrase held as its token sequence.

    Attributes:
        groups: each group's phrases (token tuples), in file order.
        terms: each group's terms as written in the file (the bot matches defined terms on them).
    """

    groups: tuple[tuple[Phrase, ...], ...] = ()
    terms: tuple[tuple[str, ...], ...] = ()

    @cached_property  # spell_out runs on every dense query
    def spelled(self) -> tuple[str, ...]:
        """Each group's phrase as written out for a reader (its first term of several words, else its
        first term): what an abbreviation means, for the sentence encoder."""
        return tuple(next((t for t in terms if " " in t), terms[0]) for terms in self.terms)

    @classmethod
    def from_lines(cls, lines: list[str], where: str = "<synonyms>") -> SynonymTable:
        """Parse the table format: ``#`` comments, one comma-separated group a line.

        Args:
            lines: the file's lines.
            where: the file name, for error messages.

        Returns:
            The table; phrases made only of stop words are dropped with a warning.

        Raises:
            RetrievalError: a line with fewer than two terms.
        """
        groups = []
        written = []
        for number, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            terms = [t.strip() for t in line.split(",") if t.strip()]
            if len(terms) < 2:
                raise RetrievalError(f"{where}:{number}: a synonym group needs at least two terms: {line!r}")
            phrases = []
            for term in terms:
                tokens = tuple(tokenize(term))
                if tokens:
                    phrases.append(tokens)
                else:
                    logger.warning("%s:%d: %r is only stop words; ignored", where, number, term)
            groups.append(tuple(dict.fromkeys(phrases)))
            written.append(tuple(terms))
        return cls(tuple(groups), tuple(written))

    @classmethod
    def load(cls, path: Path) -> SynonymTable:
        """Read a table file.

        Args:
            path: the table file.

        Returns:
            The table.

        Raises:
            RetrievalError: unreadable file or a bad line.
        """
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise RetrievalError(f"cannot read the synonym table {path}: {error}") from error
        return cls.from_lines(text.splitlines(), where=str(path))

    def expand(self, tokens: list[str]) -> list[str]:
        """Add to a tokenised query the tokens of every synonym of each phrase it contains.

        Args:
            tokens: the query's tokens (``tokenize(query)``).

        Returns:
            ``tokens`` followed by the new tokens (each once; tokens already in the query are not
            repeated, so a synonym never outweighs what the member typed).
        """
        seen = set(tokens)
        added: list[str] = []
        for group in self.groups:
            if not any(_contains(tokens, phrase) for phrase in group):
                continue
            for phrase in group:
                for token in phrase:
                    if token not in seen:
                        seen.add(token)
                        added.append(token)
        return tokens + added

    def spell_out(self, query: str) -> str:
        """``query`` with the written-out phrase of each group it mentions appended in brackets.

        Dense retrieval's encoder never learnt "T1D" or "a1c"; "my son has T1D (type 1 diabetes)" is a
        sentence it can place. A phrase the query already contains is not repeated.
        """
        tokens = tokenize(query)
        lowered = query.lower()
        extra = [
            text
            for group, text in zip(self.groups, self.spelled, strict=True)
            if any(_contains(tokens, phrase) for phrase in group) and text.lower() not in lowered
        ]
        return f"{query} ({'; '.join(extra)})" if extra else query


def _contains(tokens: list[str], phrase: Phrase) -> bool:
    """Whether ``phrase`` occurs as a contiguous run in ``tokens``."""
    width = len(phrase)
    return any(tuple(tokens[i : i + width]) == phrase for i in range(len(tokens) - width + 1))
