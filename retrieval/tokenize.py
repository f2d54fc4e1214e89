"""The single tokeniser used for both indexing and queries: lowercase, stop words, Snowball stems."""

from __future__ import annotations

import re
import threading
import unicodedata

import Stemmer

# Bump when tokenisation changes: an index built with another version must be rebuilt.
TOKENIZER_VERSION = 1

_WORD = re.compile(r"[^\W_]+")

# A short English stop list (question words included: members' questions are full of them).
# "s" and "t" are what possessives and contractions ("it's", "don't") leave behind.
STOP_WORDS: frozenset[str] = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most
    my myself no nor not of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves s t also may might must shall get got us let
    """.split()  # noqa: SIM905 - a word list reads better than 150 quoted strings
)

# PyStemmer objects are not thread-safe; the bot searches from worker threads.
_local = threading.local()


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def words(text: str) -> list[str]:
    """Lowercased word tokens of ``text`` before stop-word removal and stemming.

    Args:
        text: any text.

    Returns:
        The alphanumeric runs of the NFKC-normalised, lowercased text (``"HbA1c"`` -> ``"hba1c"``).
    """
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def tokenize(text: str) -> list[str]:
    """The index terms of ``text``: words minus stop words, Snowball (Porter2) stemmed.

    Args:
        text: a passage or a query.

    Returns:
        Terms in text order, duplicates kept (BM25 counts them).
    """
    kept = [w for w in words(text) if w not in STOP_WORDS]
    return _stemmer().stemWords(kept)
