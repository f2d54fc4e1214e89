"""Compare sentence splitters on hand-segmented gold cases and on the speed of splitting the corpus.

Splitters: the project's splitter (``retrieval.passages.split_sentences``) and the PyPI packages
pysbd, blingfire and sentencex. Each is wrapped in an adapter that returns ``(start, end)`` character
spans of the original text, stripped of surrounding whitespace.

Measures, per splitter:

- exact: share of gold cases (``bench/sentence_cases.jsonl``, one ``{"text", "sentences"}`` object a
  line) whose sentences all come out right (compared with whitespace collapsed);
- boundary precision / recall / F1, micro-averaged over all cases: a boundary is the end offset of a
  sentence other than the last, counted in non-whitespace characters so that where the whitespace
  between two sentences goes does not matter;
- speed: characters per second over every document in ``data/docs`` (normalised as the index
  normalises them), best of ``--runs`` runs.

Gold conventions: a sentence ends at terminal punctuation (with any closing quote or bracket, and a
footnote digit glued to it as in "States.1") or at a line break; so headings without a full stop and
"- " list items on their own lines are sentences; inline " - " lists that normalisation flattened are
split only at punctuation; an ellipsis followed by lowercase continuing the thought is no boundary.

Usage (from the repository root)::

    PYTHONPATH=. .venv/bin/python bench/bench_sentences.py [--json] [--runs 3] [--failures 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import blingfire
import pysbd
import sentencex

from retrieval.ingest import normalise_text
from retrieval.passages import split_sentences

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "bench" / "sentence_cases.jsonl"
DOCS = ROOT / "data" / "docs"

Spans = list[tuple[int, int]]


# --- adapters: text -> stripped (start, end) spans ----------------------------------------------


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Narrow a span so it neither starts nor ends with whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def locate(text: str, sentences: Iterable[str]) -> Spans:
    """Spans of ``sentences`` (strings a library returned) found in order in ``text``."""
    spans, offset = [], 0
    for sentence in sentences:
        sentence = sentence.strip()
        if not sentence:
            continue
        start = text.find(sentence, offset)
        if start < 0:  # the library changed the text; give up on the rest rather than guess
            break
        spans.append((start, start + len(sentence)))
        offset = start + len(sentence)
    return spans


_PYSBD = pysbd.Segmenter(language="en", clean=False, char_span=True)


def pysbd_spans(text: str) -> Spans:
    return [strip_span(text, s.start, s.end) for s in _PYSBD.segment(text)]


def blingfire_spans(text: str) -> Spans:
    _, offsets = blingfire.text_to_sentences_and_offsets(text)
    return [strip_span(text, start, end) for start, end in offsets]


def sentencex_spans(text: str) -> Spans:
    return locate(text, sentencex.segment("en", text))


SPLITTERS: dict[str, Callable[[str], Spans]] = {
    "project": split_sentences,
    "pysbd": pysbd_spans,
    "blingfire": blingfire_spans,
    "sentencex": sentencex_spans,
}


# --- scoring -------------------------------------------------------------------------------------


def collapse(text: str) -> str:
    return " ".join(text.split())


def boundaries(text: str, spans: Spans) -> set[int]:
    """End offsets of all spans but the last, in non-whitespace characters from the text start."""
    return {len("".join(text[:end].split())) for _, end in spans[:-1] if end > 0}


def gold_spans(text: str, sentences: list[str]) -> Spans:
    spans = locate(text, sentences)
    if len(spans) != len(sentences):
        raise ValueError(f"gold sentences not found in order in: {text[:60]!r}")
    return spans


def score(split: Callable[[str], Spans], cases: list[dict]) -> tuple[dict, list[dict]]:
    """Exact-case accuracy and boundary precision/recall/F1 of ``split`` on ``cases``; and its misses."""
    exact = tp = fp = fn = 0
    misses = []
    for case in cases:
        text = case["text"]
        predicted = [(s, e) for s, e in split(text) if e > s]
        got = [collapse(text[s:e]) for s, e in predicted]
        want = [collapse(s) for s in case["sentences"]]
        found, truth = boundaries(text, predicted), boundaries(text, gold_spans(text, case["sentences"]))
        tp, fp, fn = tp + len(found & truth), fp + len(found - truth), fn + len(truth - found)
        if got == want:
            exact += 1
        else:
            misses.append({"text": text, "got": got, "want": want})
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    metrics = {"exact": exact / len(cases), "precision": precision, "recall": recall, "f1": f1}
    return metrics, misses


def chars_per_second(split: Callable[[str], Spans], docs: list[str], runs: int) -> tuple[float, float]:
    """(characters per second, seconds) of splitting every document, best of ``runs`` runs."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for doc in docs:
            split(doc)
        best = min(best, time.perf_counter() - start)
    return sum(map(len, docs)) / best, best


# --- main ----------------------------------------------------------------------------------------


def load_cases(path: Path = CASES) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_docs(folder: Path = DOCS) -> list[str]:
    return [normalise_text(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.md"))]


def print_table(results: dict[str, dict], n_cases: int, n_docs: int, n_chars: int) -> None:
    print(f"{n_cases} gold cases; speed over {n_docs} documents ({n_chars:,} characters)\n")
    print(
        f"{'splitter':<16} {'exact':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'chars/s':>11} {'corpus s':>9}"
    )
    for name, r in results.items():
        print(
            f"{name:<16} {r['exact']:>6.1%} {r['precision']:>6.3f} {r['recall']:>6.3f} {r['f1']:>6.3f}"
            f" {r['chars_per_s']:>11,.0f} {r['corpus_s']:>9.3f}"
        )


def print_misses(results: dict[str, dict], limit: int) -> None:
    for name, r in results.items():
        print(f"\n{name}: {len(r['misses'])} cases wrong")
        for miss in r["misses"][:limit]:
            print(f"  text: {miss['text'][:100]!r}")
            print(f"   got: {miss['got']}")
            print(f"  want: {miss['want']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results (with the misses) as JSON")
    parser.add_argument("--runs", type=int, default=3, help="timing runs per splitter (best is kept)")
    parser.add_argument("--failures", type=int, default=0, help="show up to N wrong cases per splitter")
    args = parser.parse_args(argv)

    cases, docs = load_cases(), load_docs()
    results = {}
    for name, split in SPLITTERS.items():
        metrics, misses = score(split, cases)
        speed, seconds = chars_per_second(split, docs, args.runs)
        results[name] = {**metrics, "chars_per_s": speed, "corpus_s": seconds, "misses": misses}

    if args.json:
        json.dump({"cases": len(cases), "docs": len(docs), "results": results}, sys.stdout, indent=2)
        print()
    else:
        print_table(results, len(cases), len(docs), sum(map(len, docs)))
        if args.failures:
            print_misses(results, args.failures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
