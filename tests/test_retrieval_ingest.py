"""Ingestion: each format read, each kind of bad file skipped with a reason, text normalised."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval.ingest import SkipFile, normalise_text, read_document, read_folder
from tests.retrieval_fixtures import INDEXED, SKIPPED, pdf_bytes, write_corpus


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


def test_every_format_is_read_and_every_bad_file_skipped_with_a_reason(corpus: Path) -> None:
    documents, skipped = read_folder(corpus)
    assert {d.doc_id for d in documents} == INDEXED
    reasons = {s.path: s.reason.lower() for s in skipped}
    assert set(reasons) == set(SKIPPED)  # the hidden file is neither read nor reported
    for path, word in SKIPPED.items():
        assert word in reasons[path], (path, reasons[path])


def test_markdown_title_source_and_whitespace(corpus: Path) -> None:
    doc = read_document(corpus / "pumps.md", "pumps.md")
    assert doc.title == "Insulin pumps"
    assert doc.source == "https://example.org/pumps"
    assert "Source:" not in doc.text and not doc.text.startswith("#")
    assert "under the skin. It replaces daily shots." in doc.text  # runs of spaces collapsed
    assert "\n\nLooking after the pump\n\n" in doc.text  # a section heading is its own paragraph


def test_html_keeps_visible_text_only(corpus: Path) -> None:
    doc = read_document(corpus / "hypo.html", "hypo.html")
    assert doc.title == "Low blood sugar"
    assert doc.source == "https://example.org/hypo"
    assert "Hypoglycemia means low blood glucose. Eat fifteen grams of fast sugar." in doc.text
    for hidden in ("tracking", "color", "Home | About", "Copyright"):
        assert hidden not in doc.text
    assert "\n\nShaking\n\nSweating" in doc.text  # list items stay separate


def test_pdf_pages_and_metadata_title(corpus: Path) -> None:
    doc = read_document(corpus / "exercise.pdf", "exercise.pdf")
    assert doc.title == "Exercise and diabetes"
    assert doc.text == "Exercise lowers blood glucose.\n\nCarry a snack when you run."


def test_pdf_without_title_falls_back_to_file_name(tmp_path: Path) -> None:
    path = tmp_path / "meal-plan.pdf"
    path.write_bytes(pdf_bytes(["Eat vegetables."]))
    assert read_document(path, "meal-plan.pdf").title == "meal-plan"


def test_text_that_is_not_utf8_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\xe9 au lait".encode("latin-1"))
    with pytest.raises(SkipFile, match="UTF-8"):
        read_document(path, "latin1.txt")


def test_document_hash_follows_content(tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("One sentence.", encoding="utf-8")
    first = read_document(path, "a.txt").hash
    path.write_text("Another sentence.", encoding="utf-8")
    assert read_document(path, "a.txt").hash != first


def test_normalise_text_nfkc_invisibles_and_paragraphs() -> None:
    raw = "ﬁrst\u00a0line\u00ad here\r\n  continues\n\n\n\n  second\tparagraph  \n"
    assert normalise_text(raw) == "first line here continues\n\nsecond paragraph"
    assert normalise_text(" \n\n\t") == ""
