"""Read a folder of documents (.txt, .md, .html/.htm, .pdf) into normalised ``Document`` objects."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bs4 import BeautifulSoup, NavigableString, Tag

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
HTML_SUFFIXES = (".html", ".htm")
PDF_SUFFIXES = (".pdf",)
SUPPORTED_SUFFIXES = TEXT_SUFFIXES + HTML_SUFFIXES + PDF_SUFFIXES

# How much of a file is sniffed for NUL bytes to tell binary from text.
_SNIFF_BYTES = 8192
# A `Source: URL` line is looked for among the first lines only, so body text is never taken for it.
_SOURCE_LINES = 10
_SOURCE = re.compile(r"^\s*Source:\s*(\S+)", re.IGNORECASE)
_HEADING = re.compile(r"^\s*#{1,6}\s+(.*?)\s*#*\s*$")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SPACES = re.compile(r"\s+")
# Control characters (but not newlines/tabs) and soft hyphens only get in the way of tokenising.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad\u200b\ufeff]")
# PDF text extraction keeps the line breaks of the layout, hyphenated words included.
_PDF_HYPHEN = re.compile(r"(\w)-\n(\w)")
_HTML_DROP = ("script", "style", "noscript", "template", "nav", "header", "footer", "aside", "form", "svg")
_HTML_BLOCKS = (
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "table", "section",
    "article", "blockquote", "pre", "dd", "dt", "br", "hr", "main", "figcaption",
)  # fmt: skip


@dataclass(frozen=True)
class Document:
    """One readable file.

    Attributes:
        doc_id: its path relative to the documents folder (POSIX form).
        title: Markdown ``#`` heading, HTML ``<title>``, PDF metadata title, else the file name.
        source: the URL it names (``Source: URL`` line, HTML canonical link), if any.
        text: normalised text: NFKC, whitespace runs collapsed, paragraphs separated by a blank line.
        hash: SHA-256 of the file's bytes (unchanged documents are not re-chunked).
    """

    doc_id: str
    title: str
    source: str | None
    text: str
    hash: str


@dataclass(frozen=True)
class SkippedFile:
    """A file that was not indexed, and why."""

    path: str
    reason: str


class SkipFile(Exception):
    """Raised by a reader when a file cannot be used; the message is the reason."""


def normalise_text(text: str) -> str:
    """NFKC, invisible characters dropped, whitespace collapsed within paragraphs.

    Paragraphs (separated by blank lines) stay separated by exactly one blank line, so lists and
    sections keep their boundaries; inside a paragraph every whitespace run becomes one space.

    Args:
        text: raw text.

    Returns:
        The normalised text (``""`` when nothing visible is left).
    """
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text).replace("\r\n", "\n"))
    paragraphs = (_SPACES.sub(" ", block).strip() for block in _PARAGRAPH_BREAK.split(text))
    return "\n\n".join(p for p in paragraphs if p)


def iter_files(docs_dir: Path) -> Iterator[Path]:
    """Every file under ``docs_dir``, recursively, in a stable order; hidden files and folders skipped.

    Args:
        docs_dir: the documents folder.

    Yields:
        File paths.
    """
    for path in sorted(docs_dir.rglob("*")):
        relative = path.relative_to(docs_dir)
        if any(part.startswith(".") for part in relative.parts) or not path.is_file():
            continue
        yield path


def printable_name(name: str) -> str:
    """A file name as valid UTF-8: bytes that are not UTF-8 (which Python keeps as lone surrogates and
    no JSON file or terminal can hold) become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def check_location(path: Path, doc_id: str, root: Path) -> None:
    """Refuse a file whose name is not UTF-8, or that resolves outside the documents folder.

    A symbolic link to ``/etc/passwd`` in the folder must not have that file's text served to members.

    Args:
        path: the file (as found under the folder).
        doc_id: its path relative to the folder.
        root: the documents folder, resolved.

    Raises:
        SkipFile: with the reason.
    """
    if printable_name(doc_id) != doc_id:
        raise SkipFile("file name is not UTF-8; rename the file")
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise SkipFile(f"cannot resolve the path: {error}") from error
    if not target.is_relative_to(root):
        raise SkipFile("a link to a file outside the documents folder; copy the file in instead")


def read_document(path: Path, doc_id: str) -> Document:
    """Read one file of a supported type.

    Args:
        path: the file.
        doc_id: its id (path relative to the documents folder).

    Returns:
        The document.

    Raises:
        SkipFile: unsupported type, unreadable, binary, encrypted, or nothing but whitespace.
    """
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SkipFile(f"unsupported file type {path.suffix or '(no extension)'!r}")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise SkipFile(f"cannot read: {error.strerror or error}") from error
    if not raw.strip():
        raise SkipFile("empty file")
    title, source, text = reader(raw, path)
    if not text:
        raise SkipFile("no text in the file")
    # The file name as a title has its whitespace collapsed: a newline in it would break output lines.
    fallback = " ".join(path.stem.split()) or path.name
    return Document(doc_id, title or fallback, source, text, hashlib.sha256(raw).hexdigest())


def _decode_text(raw: bytes) -> str:
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise SkipFile("binary file (NUL bytes), not text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SkipFile(f"not UTF-8 text (byte {error.start})") from error


def _read_text(raw: bytes, path: Path) -> tuple[str | None, str | None, str]:
    """Plain text and Markdown: a leading ``# heading`` is the title, a ``Source: URL`` line the source."""
    lines = _decode_text(raw).splitlines()
    title = source = None
    body: list[str] = []
    for number, line in enumerate(lines):
        heading = _HEADING.match(line)
        found_source = _SOURCE.match(line) if number < _SOURCE_LINES else None
        if title is None and heading and not any(b.strip() for b in body):
            title = normalise_text(heading.group(1))
        elif source is None and found_source:
            source = found_source.group(1)
        elif heading:
            body.append(heading.group(1))  # a section heading stays, as its own paragraph
            body.append("")
        else:
            body.append(_MD_LINK.sub(r"\1", line) if path.suffix.lower() != ".txt" else line)
    return title, source, normalise_text("\n".join(body))


def _read_html(raw: bytes, path: Path) -> tuple[str | None, str | None, str]:
    """Visible text of an HTML page; ``<title>`` and the canonical link; scripts, styles, nav dropped."""
    if b"\x00" in raw[:_SNIFF_BYTES]:
        raise SkipFile("binary file (NUL bytes), not HTML")
    soup = BeautifulSoup(raw, "html.parser")
    title = normalise_text(soup.title.get_text()) if soup.title else None
    canonical = soup.find("link", rel="canonical")
    source = canonical.get("href") if canonical is not None else None
    return title, source if isinstance(source, str) else None, normalise_text(_visible_text(soup))


# Marks the end of a block element on the walk's stack.
_BLOCK_END = object()


def _visible_text(soup: BeautifulSoup) -> str:
    """``soup.get_text()`` without the dropped elements and ``<head>``, block elements set apart by a
    blank line (inline ones, ``<b>`` or ``<a>``, stay inside their sentence).

    One walk over the tree, never modifying it: bs4's ``insert_before``/``decompose`` look the element
    up in its parent's children (``Tag.index``), which made a page of many blocks quadratic.
    """
    wanted = soup.interesting_string_types or Tag.MAIN_CONTENT_STRING_TYPES
    wanted = {wanted} if isinstance(wanted, type) else set(wanted)
    head = soup.head  # looked up once: `soup.head` is a search
    pieces: list[str] = []
    stack: list[Any] = [soup]  # an explicit stack: deeply nested pages must not hit the recursion limit
    while stack:
        node = stack.pop()
        if node is _BLOCK_END:
            pieces.append("\n\n")
        elif isinstance(node, NavigableString):
            if type(node) in wanted:  # exact types, as get_text: no comments, doctypes, scripts
                pieces.append(str(node))
        elif isinstance(node, Tag) and node.name not in _HTML_DROP and node is not head:
            if node.name in _HTML_BLOCKS:
                pieces.append("\n\n")
                stack.append(_BLOCK_END)
            stack.extend(reversed(node.contents))
    return "".join(pieces)


def _read_pdf(raw: bytes, path: Path) -> tuple[str | None, str | None, str]:
    """Text of a PDF, page by page (pypdf); encrypted or broken files are skipped."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise SkipFile("encrypted PDF (needs a password)")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
    except SkipFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as error:
        raise SkipFile(f"unreadable PDF: {error}") from error
    except Exception as error:  # noqa: BLE001 - pypdf raises many types on broken input; one bad file must not stop the rest
        raise SkipFile(f"unreadable PDF: {type(error).__name__}: {error}") from error
    text = normalise_text("\n\n".join(_PDF_HYPHEN.sub(r"\1\2", page) for page in pages))
    if not text:
        raise SkipFile("PDF has no extractable text (scanned images?)")
    title = normalise_text(metadata.title) if metadata is not None and metadata.title else None
    return title, None, text


_READERS: dict[str, Callable[[bytes, Path], tuple[str | None, str | None, str]]] = {
    **dict.fromkeys(TEXT_SUFFIXES, _read_text),
    **dict.fromkeys(HTML_SUFFIXES, _read_html),
    **dict.fromkeys(PDF_SUFFIXES, _read_pdf),
}


def read_folder(
    docs_dir: Path, on_file: Callable[[int, int], None] | None = None
) -> tuple[list[Document], list[SkippedFile]]:
    """Read every file under a folder; one bad file never stops the rest.

    Args:
        docs_dir: the documents folder.
        on_file: called as ``on_file(done, total)`` after each file (for progress bars).

    Returns:
        The documents read and the files skipped, each with its reason.
    """
    documents: list[Document] = []
    skipped: list[SkippedFile] = []
    files = list(iter_files(docs_dir))
    root = docs_dir.resolve()
    for done, path in enumerate(files, 1):
        doc_id = path.relative_to(docs_dir).as_posix()
        try:
            check_location(path, doc_id, root)
            documents.append(read_document(path, doc_id))
        except SkipFile as why:
            shown = printable_name(doc_id)
            logger.warning("skipped %r: %s", shown, why)
            skipped.append(SkippedFile(shown, str(why)))
        if on_file is not None:
            on_file(done, len(files))
    return documents, skipped
