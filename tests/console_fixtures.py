"""Helpers for the console tests: a documents folder, a console app on tmp_path, logged-in clients."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bot.console import create_app, open_console
from bot.console.service import Console
from bot.engine import AnswerEngine
from bot.store import Store
from tests.bot_fakes import FakeIndex, FakeReader, make_settings

TOKEN = "test-admin-token-0123456789"
# A document with a title line, a Source: line and a double space (normalised away at ingestion): the
# annotation offsets index into the ingested text, not the file.
INSULIN_MD = (
    "# Insulin basics\n\nSource: https://example.org/insulin\n\n"
    "Insulin is a hormone made by the pancreas.  It lets glucose enter the cells of the body.\n\n"
    "The A1C test measures average blood sugar over the past three months.\n"
)
INSULIN_TEXT = (
    "Insulin is a hormone made by the pancreas. It lets glucose enter the cells of the body.\n\n"
    "The A1C test measures average blood sugar over the past three months."
)
FOOT_MD = "# Foot care\n\nPeople with diabetes should check their feet every day for cuts and blisters.\n"


def write_docs(docs_dir: Path) -> Path:
    """Two Markdown documents in ``docs_dir``."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "insulin.md").write_text(INSULIN_MD, encoding="utf-8")
    (docs_dir / "foot-care.md").write_text(FOOT_MD, encoding="utf-8")
    return docs_dir


def make_console(tmp_path: Path, token: str | None = TOKEN, **overrides: Any) -> Console:
    """A console on settings rooted in tmp_path, with the two documents."""
    write_docs(tmp_path / "docs")
    settings = make_settings(tmp_path, console_token=token, **overrides)
    console, _ = open_console(settings)
    return console


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def logged_in(console: Console) -> TestClient:
    """A TestClient with the session cookie."""
    client = TestClient(create_app(console))
    response = client.post("/login", data={"token": TOKEN, "next": "/annotate"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return client


def csrf_of(html: str) -> str:
    """The CSRF token in a rendered page."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no csrf_token field on the page"
    return match.group(1)


def log_feedback(store: Store, tmp_path: Path) -> dict[str, int]:
    """One question answered and voted "not helpful", one declined (through the real engine + fakes)."""
    engine = AnswerEngine.from_settings(make_settings(tmp_path), reader=FakeReader(), index=FakeIndex())
    disliked = store.log_question(987654321, "What is brittle diabetes characterized by?",
                                  engine.answer("What is brittle diabetes characterized by?"))  # fmt: skip
    store.record_feedback(disliked, 987654321, helpful=False)
    declined = store.log_question(
        123456789, "Is brittle diabetes rare?", engine.answer("Is brittle diabetes rare?")
    )
    return {"disliked": disliked, "declined": declined}
