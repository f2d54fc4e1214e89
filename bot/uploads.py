"""Documents that admins send the bot in Telegram: checked, named safely, written atomically, indexed.

No telegram here: the handler downloads the file to ``temp_path`` and calls ``install``. The rules:

- only the types ``retrieval`` reads (.pdf, .md, .txt, .html and their aliases), at most
  ``HELPLINE_MAX_UPLOAD_BYTES``;
- the name is reduced to its last path component and a safe alphabet (no ``../``, no hidden files,
  no control characters), so the file can only land directly in ``HELPLINE_DOCS_DIR``;
- a document with that name is never overwritten unless the admin asked (``/replace`` as caption);
- the file is read the way ``retrieval index`` reads it before it is moved into place: a file that
  cannot be read is reported and never reaches the folder (the index is not touched);
- the download goes to a hidden temporary file in the same folder (a concurrent reindex skips hidden
  files) and is renamed into place, so nothing is ever half-written.
"""

from __future__ import annotations

import os
import re
import secrets
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from retrieval.ingest import SUPPORTED_SUFFIXES, SkipFile, read_document

REPLACE_CAPTION = "/replace"
MAX_NAME_CHARS = 120
_UNSAFE = re.compile(r"[^\w.\- ]+")
_SPACES = re.compile(r"\s+")


class UploadError(ValueError):
    """The upload was refused; the message says why and names the file."""


@dataclass(frozen=True)
class InstalledDocument:
    """A document moved into the documents folder.

    Attributes:
        path: where it is now.
        replaced: True when it replaced a document of the same name.
        title: the title the index will show (Markdown heading, HTML title, PDF title or file name).
    """

    path: Path
    replaced: bool
    title: str


def safe_file_name(name: str | None) -> str:
    """A file name that can only mean a file directly inside the documents folder.

    Args:
        name: the name the client sent (anything: ``../../etc/passwd.md``, ``C:\\x\\a.txt``, None).

    Returns:
        The last path component, NFKC-normalised, with unsafe characters replaced by ``_``, leading
        dots and spaces dropped and the extension lowercased.

    Raises:
        UploadError: nothing usable is left, or the type is not one the index reads.
    """
    raw = (name or "").replace("\\", "/").split("/")[-1]
    cleaned = _SPACES.sub(" ", _UNSAFE.sub("_", unicodedata.normalize("NFKC", raw))).strip()
    cleaned = cleaned.lstrip(". ")
    stem, dot, suffix = cleaned.rpartition(".")
    if not dot or not stem.strip("._ "):
        raise UploadError(
            f"the file name {name!r} has no usable name and extension; rename it, e.g. leaflet.pdf"
        )
    suffix = "." + suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise UploadError(f"{cleaned} is not a document type I can read ({suffix}); send one of: {kinds}")
    stem = stem[: MAX_NAME_CHARS - len(suffix)].rstrip(". ")
    return stem + suffix


def check_size(name: str, size: int | None, limit: int) -> None:
    """Refuse a file over ``limit`` bytes (``size`` None: unknown yet, checked after download).

    Raises:
        UploadError: naming the file, its size and the limit.
    """
    if size is not None and size > limit:
        raise UploadError(f"{name} is {_megabytes(size)}; the limit is {_megabytes(limit)}")


def target_path(docs_dir: Path, name: str, replace: bool) -> Path:
    """Where an upload named ``name`` goes, refusing to overwrite unless ``replace``.

    Raises:
        UploadError: the documents folder is missing, or a document of that name exists (and not
            ``replace``).
    """
    if not docs_dir.is_dir():
        raise UploadError(f"The documents folder {docs_dir} (HELPLINE_DOCS_DIR) does not exist")
    target = docs_dir / name
    if target.exists() and not replace:
        raise UploadError(
            f"A document named {name} already exists; send the file again with the caption "
            f"{REPLACE_CAPTION} to replace it"
        )
    return target


def temp_path(target: Path) -> Path:
    """A hidden, unique file beside ``target`` to download into (same folder: the rename is atomic)."""
    return target.with_name(f".upload-{secrets.token_hex(6)}-{target.name}")


def install(temp: Path, target: Path, *, replace: bool, limit: int) -> InstalledDocument:
    """Check a downloaded file and move it into place; the temporary file is gone afterwards, always.

    Args:
        temp: the downloaded file (from ``temp_path(target)``).
        target: where it goes (from ``target_path``).
        replace: whether an existing document may be replaced.
        limit: the size limit in bytes (the download's real size is checked too).

    Returns:
        What was installed.

    Raises:
        UploadError: too large, unreadable (the reason ``retrieval index`` would give), or a document
            of that name appeared meanwhile.
    """
    try:
        check_size(target.name, temp.stat().st_size, limit)
        try:
            document = read_document(temp, target.name)
        except SkipFile as e:
            raise UploadError(f"I could not read {target.name}: {e}. Nothing was added") from None
        replaced = target.exists()
        if replace:
            os.replace(temp, target)
        else:
            try:
                os.link(temp, target)  # fails if the name was taken meanwhile: never overwrites
            except FileExistsError:
                raise UploadError(
                    f"A document named {target.name} already exists; send it again with the caption "
                    f"{REPLACE_CAPTION} to replace it"
                ) from None
        title = document.title if not document.title.startswith(".upload-") else target.stem
        return InstalledDocument(target, replaced, title)
    finally:
        temp.unlink(missing_ok=True)


def _megabytes(size: int) -> str:
    """A size as people read it: ``10.0 MB``, ``49 KB``."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"
