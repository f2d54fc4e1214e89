"""Admins' uploads on their own: safe names, sizes, no overwrite, atomic install; the file URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import uploads
from bot.config import Settings
from bot.uploads import UploadError, install, safe_file_name, target_path, temp_path


@pytest.mark.parametrize(
    ("raw", "safe"),
    [
        ("leaflet.pdf", "leaflet.pdf"),
        ("../../etc/passwd.md", "passwd.md"),
        ("C:\\Users\\ann\\Notes.TXT", "Notes.txt"),
        (".hidden.md", "hidden.md"),
        ("a/../..", None),
        ("walk <times>; rm -rf.html", "walk _times_ rm -rf.html"),
        ("Zu\u0308rich.md", "Zürich.md"),
        ("x" * 300 + ".md", "x" * 117 + ".md"),
        ("notes", None),
        ("..md", None),
        (None, None),
    ],
)
def test_safe_file_name(raw: str | None, safe: str | None) -> None:
    if safe is None:
        with pytest.raises(UploadError, match="no usable name"):
            safe_file_name(raw)
    else:
        assert safe_file_name(raw) == safe


def test_unsupported_types_are_named() -> None:
    with pytest.raises(UploadError, match=r"photo.jpg is not a document type I can read \(.jpg\)"):
        safe_file_name("photo.jpg")


def test_install_never_overwrites_without_replace(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Old\n\nold text\n")
    with pytest.raises(UploadError, match="already exists"):
        target_path(tmp_path, "a.md", replace=False)
    target = target_path(tmp_path, "a.md", replace=True)
    temp = temp_path(target)
    temp.write_text("# New\n\nnew text\n")
    installed = install(temp, target, replace=True, limit=1000)
    assert (installed.replaced, installed.title) == (True, "New")
    assert target.read_text() == "# New\n\nnew text\n" and not temp.exists()
    # A file of that name appearing between the check and the install is not overwritten either.
    other = temp_path(tmp_path / "b.md")
    other.write_text("b text\n")
    (tmp_path / "b.md").write_text("someone else's\n")
    with pytest.raises(UploadError, match="already exists"):
        install(other, tmp_path / "b.md", replace=False, limit=1000)
    assert (tmp_path / "b.md").read_text() == "someone else's\n" and not other.exists()


def test_a_missing_documents_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match=str(tmp_path / "nope")):
        target_path(tmp_path / "nope", "a.md", replace=False)


def test_check_size() -> None:
    uploads.check_size("a.pdf", None, 10)
    with pytest.raises(UploadError, match=r"a.pdf is 11.0 MB; the limit is 10.0 MB"):
        uploads.check_size("a.pdf", 11 * 1024 * 1024, 10 * 1024 * 1024)


@pytest.mark.parametrize(
    ("base", "file_url", "expected"),
    [
        ("https://api.telegram.org/bot", None, "https://api.telegram.org/file/bot"),
        ("http://127.0.0.1:8081/bot", None, "http://127.0.0.1:8081/file/bot"),
        ("http://local/api/bot{token}/x", None, "http://local/api/file/bot{token}/x"),
        ("http://local/bot", "http://files.local/file/bot", "http://files.local/file/bot"),
    ],
)
def test_the_file_url_follows_the_api_url(base: str, file_url: str | None, expected: str) -> None:
    settings = Settings(_env_file=None, telegram_base_url=base, telegram_base_file_url=file_url)
    assert settings.file_base_url() == expected


def test_an_api_url_without_bot_needs_a_file_url() -> None:
    with pytest.raises(ValueError, match="TELEGRAM_BASE_FILE_URL"):
        Settings(_env_file=None, telegram_base_url="http://local/api/").file_base_url()
