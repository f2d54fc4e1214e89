"""Shared test set-up: every test runs against its own tmp_path, never real data or real Telegram."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

# A port nothing listens on: a test that forgot to point the bot at the fake server fails fast.
UNREACHABLE_BOT_API = "http://127.0.0.1:9/bot"


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point every HELPLINE_* path at tmp_path and drop Telegram credentials from the environment."""
    for name in list(os.environ):
        if name.startswith(("HELPLINE_", "TELEGRAM_")):
            monkeypatch.delenv(name)
    var = tmp_path / "var"
    monkeypatch.setenv("HELPLINE_MODEL_DIR", str(var / "model"))
    monkeypatch.setenv("HELPLINE_INDEX_DIR", str(var / "index"))
    monkeypatch.setenv("HELPLINE_DOCS_DIR", str(tmp_path / "docs"))
    monkeypatch.setenv("HELPLINE_DB", str(var / "helpline.db"))
    # BM25 only, so most tests load no sentence encoder; the hybrid path has integration tests.
    monkeypatch.setenv("HELPLINE_RETRIEVAL_MODE", "bm25")
    monkeypatch.setenv("TELEGRAM_BASE_URL", UNREACHABLE_BOT_API)


@pytest.fixture
async def telegram() -> AsyncIterator[Any]:
    """A fake Bot API server on 127.0.0.1 (``bot.testing.fake_telegram.FakeTelegram``), for one test."""
    from bot.testing.fake_telegram import FakeTelegram  # noqa: PLC0415 - aiohttp only for the bot tests

    async with FakeTelegram() as server:
        yield server
