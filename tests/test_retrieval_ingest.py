"""Ingestion: each format read, each kind of bad file skipped with a reason, text normalised."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retrieval.ingest import SkipFile, normalise_text, read_document, read_folder
from tests.retrieval_fixtures import HTML_DOC, INDEXED, SKIPPED, pdf_bytes, write_corpus


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


RICH_HTML = """<!doctype html><html><head><title>Foot care</title><meta name="x" content="y"></head>
<body><!-- a comment --><header>Site header</header><div class="a"><p>Check your <b>feet</b>
every day.</p><div><p>Nested <a href="/x">link</a> text.</p><br>After a break<hr>rule</div></div>
<table><tr><td>Cell one</td><td>Cell two</td></tr></table><script>var x = 1;</script>
<ul><li>Wash</li><li>Dry <i>well</i></li></ul><pre>keep   spacing</pre><![CDATA[cdata text]]>
<form><input value="no">Form text</form><section><h2>Shoes</h2>Wear soft shoes.</section></body></html>
"""


def _marked_in_tree(raw: str) -> str:
    """The text as the reader computed it before it walked the tree once (the expected output)."""
    from bs4 import BeautifulSoup

    from retrieval.ingest import _HTML_BLOCKS, _HTML_DROP

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    if soup.head is not None:
        soup.head.decompose()
    for tag in soup.find_all(_HTML_BLOCKS):
        tag.insert_before("\n\n")
        tag.insert_after("\n\n")
    return normalise_text(soup.get_text())


NO_HEAD_HTML = "<p>First<div>inside</div>tail</p><!-- hidden --><nav>menu</nav><li>item</li> end"


@pytest.mark.parametrize("raw", [RICH_HTML, NO_HEAD_HTML, HTML_DOC])
def test_html_text_is_unchanged_by_the_one_pass_walk(tmp_path: Path, raw: str) -> None:
    path = tmp_path / "page.html"
    path.write_text(raw, encoding="utf-8")
    assert read_document(path, path.name).text == _marked_in_tree(raw)


def _page(blocks: int) -> str:
    body = "".join(f"<div>Block {i} is about insulin.<script>x({i})</script></div>" for i in range(blocks))
    return f"<html><head><title>Many</title></head><body>{body}</body></html>"


def test_html_reading_scans_no_sibling_lists_so_stays_linear(tmp_path: Path, monkeypatch) -> None:
    # Tag.index scans a parent's children from the start: calling it per block made reading a page
    # quadratic (a 600 KB page of 20,000 blocks took a minute). Count the children it scans.
    from bs4 import Tag

    scanned = []
    original = Tag.index

    def counting_index(self: Tag, element: object) -> int:
        position = original(self, element)
        scanned.append(position + 1)
        return position

    monkeypatch.setattr(Tag, "index", counting_index)
    path = tmp_path / "many.html"
    path.write_text(_page(2000), encoding="utf-8")
    doc = read_document(path, "many.html")
    assert doc.text.count("\n\n") == 1999 and "x(" not in doc.text
    assert sum(scanned) <= 2000  # linear at most; marking each block in the tree scanned ~4 million


def test_a_page_of_20000_blocks_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "huge.html"
    path.write_text(_page(20_000), encoding="utf-8")
    paragraphs = read_document(path, "huge.html").text.split("\n\n")
    assert len(paragraphs) == 20_000 and paragraphs[-1] == "Block 19999 is about insulin."


def test_a_file_name_that_is_not_utf8_is_skipped_and_the_rest_read(corpus: Path) -> None:
    bad_name = Path(os.fsdecode(bytes(corpus) + b"/bad-\xff.md"))
    bad_name.write_text("# Bad name\n\nInsulin text.", encoding="utf-8")
    documents, skipped = read_folder(corpus)
    assert {d.doc_id for d in documents} == INDEXED
    bad = next(s for s in skipped if "UTF-8" in s.reason)
    assert bad.path == "bad-\\xff.md"  # the byte shown, and the name itself valid UTF-8
    bad.path.encode("utf-8")


def test_a_link_out_of_the_documents_folder_is_skipped(corpus: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("The admin password is hunter2.", encoding="utf-8")
    (corpus / "outside.txt").symlink_to(secret)
    (corpus / "outside-relative.txt").symlink_to(Path("..") / "secret.txt")
    (corpus / "inside.txt").symlink_to(corpus / "sub" / "dka.txt")  # a link within the folder is fine
    (corpus / "loop.txt").symlink_to(corpus / "loop.txt")
    documents, skipped = read_folder(corpus)
    assert {d.doc_id for d in documents} == INDEXED | {"inside.txt"}
    assert not any("hunter2" in d.text for d in documents)
    reasons = {s.path: s.reason for s in skipped}
    assert "outside the documents folder" in reasons["outside.txt"]
    assert "outside the documents folder" in reasons["outside-relative.txt"]
    assert "loop.txt" not in {d.doc_id for d in documents}


def test_a_file_name_with_a_newline_gives_a_one_line_title(tmp_path: Path) -> None:
    path = tmp_path / "forged\nskipped x: y.txt"
    path.write_text("Insulin lowers glucose.", encoding="utf-8")
    assert read_document(path, path.name).title == "forged skipped x: y"
