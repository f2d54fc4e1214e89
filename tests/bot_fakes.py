"""Test-only helpers for the bot tests; the reusable doubles live in ``bot.testing`` (bench uses them)."""

from __future__ import annotations

import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bot.config import Settings
from bot.testing.fakes import (
    ANSWER_SCORE,
    CORPUS,
    NO_ANSWER_SCORE,
    FakeIndex,
    FakeReader,
    corpus_passages,
    words,
)
from bot.testing.running import free_port, running_bot

__all__ = [
    "ANSWER_SCORE",
    "BagOfWordsEncoder",
    "CORPUS",
    "NO_ANSWER_SCORE",
    "FakeIndex",
    "FakeReader",
    "FixedClock",
    "corpus_passages",
    "free_port",
    "make_settings",
    "running_bot",
    "words",
    "write_corpus_docs",
    "write_fake_model",
]


class FixedClock:
    """A clock the test sets by hand (``clock.now = ...``) for the store's time-based queries."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings rooted in tmp_path that never read a ``.env`` file."""
    values: dict[str, Any] = {
        "db_path": tmp_path / "var" / "helpline.db",
        "index_dir": tmp_path / "var" / "index",
        "model_dir": tmp_path / "var" / "model",
        "docs_dir": tmp_path / "docs",
        # BM25 only: the engine tests build BM25 indexes; hybrid search has tests of its own.
        "retrieval_mode": "bm25",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def write_fake_model(model_dir: Path) -> Path:
    """A model directory as far as the bot's checks go (a ``config.json``); readers come from fakes."""
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "config.json").write_text("{}", encoding="utf-8")
    return model_dir


def write_corpus_docs(docs_dir: Path) -> Path:
    """Write the tiny corpus as Markdown documents in the bundled format (``# title``, ``Source:``)."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    for i, (title, source, text, *_) in enumerate(CORPUS):
        (docs_dir / f"doc-{i}.md").write_text(f"# {title}\n\nSource: {source}\n\n{text}\n", encoding="utf-8")
    return docs_dir


class BagOfWordsEncoder:
    """A stand-in for the FAQ's sentence encoder: unit vectors of hashed content words (so questions
    that share most of their words are close), no model to load."""

    dim = 256

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in words(text):
                out[row, zlib.crc32(word.encode("utf-8")) % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
