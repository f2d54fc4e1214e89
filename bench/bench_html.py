"""Benchmark indexing an HTML page of many small blocks against the same text as a ``.txt`` file.

``retrieval index`` once spent time quadratic in the number of HTML blocks (a 600 KB page of 20,000
``<div>``s took 66 s against 1 s as text). This builds both indexes in the same run and prints the
ratio, which should stay a small constant however many blocks the page has.

Usage:
    .venv/bin/python bench/bench_html.py                      # 20,000 blocks
    .venv/bin/python bench/bench_html.py --blocks 2000 20000 100000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from retrieval import build_index

SENTENCE = "Block {i} says that insulin helps glucose enter the cells of the body."


def _build_seconds(docs: Path, index: Path) -> float:
    started = time.perf_counter()
    build_index(docs, index)
    return time.perf_counter() - started


def bench(blocks: int, folder: Path) -> tuple[float, float, int]:
    """Seconds to index the page as HTML and as text, and the page's size in bytes."""
    sentences = [SENTENCE.format(i=i) for i in range(blocks)]
    html_docs, text_docs = folder / f"html{blocks}", folder / f"text{blocks}"
    html_docs.mkdir()
    text_docs.mkdir()
    body = "".join(f"<div>{s}</div>" for s in sentences)
    page = f"<html><head><title>Blocks</title></head><body>{body}</body></html>"
    (html_docs / "page.html").write_text(page, encoding="utf-8")
    (text_docs / "page.txt").write_text("# Blocks\n\n" + "\n\n".join(sentences), encoding="utf-8")
    html_s = _build_seconds(html_docs, folder / f"html{blocks}.index")
    text_s = _build_seconds(text_docs, folder / f"text{blocks}.index")
    return html_s, text_s, len(page.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, nargs="+", default=[20_000])
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        for blocks in args.blocks:
            html_s, text_s, size = bench(blocks, Path(tmp))
            print(
                f"{blocks:>7} blocks ({size / 1e6:.1f} MB): html {html_s:.2f} s, txt {text_s:.2f} s, "
                f"ratio {html_s / text_s:.2f}x"
            )


if __name__ == "__main__":
    main()
