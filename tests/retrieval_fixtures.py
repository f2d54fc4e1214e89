"""Small documents for the retrieval tests (fixtures live here: tests/conftest.py belongs to others)."""

from __future__ import annotations

import io
from pathlib import Path

from pypdf import PdfReader, PdfWriter


def pdf_bytes(pages: list[str], title: str | None = None, password: str | None = None) -> bytes:
    """A real PDF with one line of Helvetica text per page, built by hand (pypdf cannot draw text).

    Args:
        pages: the text of each page (ASCII, no parentheses or backslashes).
        title: the document-information title, if any.
        password: encrypt with this user password (RC4, which pypdf does without extra packages).

    Returns:
        The PDF file's bytes.
    """
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    font = 3 + 2 * len(pages)
    for i, text in enumerate(pages):
        page, content = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{page} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content} 0 R "
            f"/Resources << /Font << /F1 {font} 0 R >> >> >>"
        )
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    objects.append("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("ascii")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode("ascii")
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode("ascii")
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode("ascii")
    if title is None and password is None:
        return bytes(out)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(out))))
    if title is not None:
        writer.add_metadata({"/Title": title})
    if password is not None:
        writer.encrypt(password, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


MARKDOWN_DOC = """# Insulin pumps

Source: https://example.org/pumps (Example)

An insulin pump delivers insulin through a thin tube under the skin.   It replaces   daily shots.
Many children with type 1 diabetes use one.

## Looking after the pump

Change the infusion set every two or three days. Check your blood glucose often.
"""

HTML_DOC = """<!doctype html><html><head><title>Low blood sugar</title>
<link rel="canonical" href="https://example.org/hypo"><style>p { color: red }</style>
<script>var tracking = "should not be indexed";</script></head>
<body><nav>Home | About | Contact</nav>
<h1>Hypoglycemia</h1><p>Hypoglycemia means <b>low blood glucose</b>. Eat fifteen grams of fast sugar.</p>
<ul><li>Shaking</li><li>Sweating</li></ul>
<footer>Copyright footer text</footer></body></html>
"""

TEXT_DOC = "Ketoacidosis is an emergency.\n\nDrink water and call your doctor when ketones are high.\n"


def write_corpus(folder: Path) -> Path:
    """A documents folder with one good file of each type, plus one that must be skipped of each kind.

    Returns:
        The folder.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pumps.md").write_text(MARKDOWN_DOC, encoding="utf-8")
    (folder / "hypo.html").write_text(HTML_DOC, encoding="utf-8")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "dka.txt").write_text(TEXT_DOC, encoding="utf-8")
    (folder / "exercise.pdf").write_bytes(
        pdf_bytes(
            ["Exercise lowers blood glucose.", "Carry a snack when you run."], title="Exercise and diabetes"
        )
    )
    (folder / "locked.pdf").write_bytes(pdf_bytes(["Secret text about insulin."], password="s3cret"))
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf\n")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (folder / "notes.docx").write_bytes(b"PK\x03\x04 a word file")
    (folder / "empty.md").write_text("  \n\n ", encoding="utf-8")
    (folder / ".hidden.md").write_text("# Hidden\n\nNever indexed.", encoding="utf-8")
    return folder


# The files of write_corpus that must be indexed, and those skipped (path -> a word of the reason).
INDEXED = {"pumps.md", "hypo.html", "sub/dka.txt", "exercise.pdf"}
SKIPPED = {
    "locked.pdf": "encrypted",
    "broken.pdf": "pdf",
    "binary.txt": "binary",
    "notes.docx": "unsupported",
    "empty.md": "empty",
}
