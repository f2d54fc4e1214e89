"""Load and check SQuAD v1.1 / v2.0 files (``.json`` or ``.json.gz``) into flat, typed examples.

Whole-file problems (not UTF-8, truncated or invalid JSON, not SQuAD-shaped, duplicate question ids)
raise ``SquadFormatError`` with a one-line message. Problems with single questions (missing fields, empty
context or question, an answer text that is not at its ``answer_start``) reject that question with a
reason naming the file, article title and question id; the rest of the file is still used. An answer
whose text sits a few characters away from ``answer_start`` (e.g. leading whitespace) is repaired and
counted.
"""

from __future__ import annotations

import gzip
import json
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from finetune.errors import ConfigError, FinetuneError

logger = logging.getLogger(__name__)

# An answer text found at most this many characters from its answer_start is repaired, not rejected.
DEFAULT_MAX_DRIFT = 10


class SquadFormatError(FinetuneError, ValueError):
    """A file that cannot be read as SQuAD at all (the message is one line, naming the file)."""


@dataclass(frozen=True)
class GoldAnswer:
    """One annotated answer: ``context[start:start + len(text)] == text``."""

    text: str
    start: int

    @property
    def end(self) -> int:
        return self.start + len(self.text)


@dataclass(frozen=True)
class SquadExample:
    """One question about one context.

    Attributes:
        id: the question id (unique over all loaded files).
        title: the article title.
        context: the paragraph text.
        question: the question text.
        answers: the gold answers (empty when the question is unanswerable).
        source: the file the example came from.
    """

    id: str
    title: str
    context: str
    question: str
    answers: tuple[GoldAnswer, ...]
    source: str

    @property
    def is_impossible(self) -> bool:
        return not self.answers


@dataclass(frozen=True)
class Rejection:
    """A question left out, and why (the reason names file, article title and question id)."""

    id: str
    reason: str


@dataclass(frozen=True)
class SquadReport:
    """Counts over the loaded files (the ``finetune check --json`` document, less the window count)."""

    articles: int = 0
    paragraphs: int = 0
    questions: int = 0
    answers: int = 0
    unanswerable: int = 0
    repaired: int = 0
    rejected: tuple[Rejection, ...] = ()

    def merged(self, other: SquadReport) -> SquadReport:
        """The report of both files together (every field adds up: counts and rejection tuples)."""
        return SquadReport(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})


@dataclass(frozen=True)
class SquadData:
    """The usable examples of one or more files, with the report of what was read."""

    examples: tuple[SquadExample, ...]
    report: SquadReport
    files: tuple[str, ...] = ()

    @property
    def has_unanswerable(self) -> bool:
        """True for v2-style data, where a model must also learn to say 'no answer'."""
        return any(example.is_impossible for example in self.examples)


@dataclass
class _Counts:
    """Mutable tallies while one file is read."""

    articles: int = 0
    paragraphs: int = 0
    questions: int = 0
    answers: int = 0
    unanswerable: int = 0
    repaired: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def frozen(self) -> SquadReport:
        tallies = {f.name: getattr(self, f.name) for f in fields(SquadReport)}
        return SquadReport(**{**tallies, "rejected": tuple(self.rejected)})


class _Reject(Exception):
    """One question cannot be used; the message is the reason."""


# ----------------------------------------------------------------------------------------------------
# Reading files


def read_json(path: Path) -> Any:
    """Parse a ``.json`` or ``.json.gz`` file.

    Args:
        path: the file.

    Returns:
        The parsed JSON value.

    Raises:
        SquadFormatError: missing file, bad gzip, not UTF-8, invalid/truncated or absurdly nested JSON.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        raise SquadFormatError(f"{path}: no such file") from e
    except OSError as e:
        raise SquadFormatError(f"{path}: cannot read it ({e.strerror or e})") from e
    if path.name.endswith(".gz"):
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a cut .gz is an EOFError
            raise SquadFormatError(f"{path}: cannot read the gzip data ({e}); is the file complete?") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SquadFormatError(
            f"{path}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}); re-save it as UTF-8"
        ) from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        hint = " (the file looks truncated)" if e.pos >= len(text.rstrip()) else ""
        raise SquadFormatError(
            f"{path}: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}{hint}"
        ) from e
    except RecursionError as e:  # the parser recurses per level: 200 KB of "[" is no SQuAD file
        raise SquadFormatError(f"{path}: JSON nested too deeply to be a SQuAD file") from e


def _articles(path: Path, document: Any) -> list[Any]:
    """The ``data`` list of a SQuAD document, or a one-line error."""
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise SquadFormatError(
            f"{path}: not a SQuAD file (expected an object with a 'data' list of articles)"
        )
    return document["data"]


# ----------------------------------------------------------------------------------------------------
# Checking one question


def _find_answer(context: str, text: str, start: Any, max_drift: int) -> tuple[GoldAnswer, bool]:
    """Locate one answer in its context.

    Returns:
        The answer as found, and whether it had to be repaired.

    Raises:
        _Reject: the answer cannot be placed.
    """
    if not isinstance(text, str) or not text.strip():
        raise _Reject("empty answer text")
    if isinstance(start, bool) or not isinstance(start, int):
        raise _Reject(f"answer_start {start!r} is not an integer")
    if start < 0:
        # Not drift to repair: a negative window end would make str.find count from the far end.
        raise _Reject(f"answer_start {start} is negative")
    if context[start : start + len(text)] == text and text == text.strip():
        return GoldAnswer(text, start), False
    stripped = text.strip()
    lo = max(0, start - max_drift)
    hi = min(len(context), start + len(text) + max_drift)
    found = list(_occurrences(context, stripped, lo, hi))
    if not found:
        seen = context[start : start + len(text)] if 0 <= start < len(context) else "<past the end>"
        raise _Reject(f"answer text {text!r} is not at answer_start {start} (found {seen!r})")
    nearest = min(found, key=lambda i: abs(i - start))
    return GoldAnswer(stripped, nearest), True


def _occurrences(context: str, text: str, lo: int, hi: int) -> Iterable[int]:
    """Start offsets of ``text`` lying wholly inside ``context[lo:hi]``."""
    index = context.find(text, lo, hi)
    while index != -1:
        yield index
        index = context.find(text, index + 1, hi)


def _require(record: dict[str, Any], key: str, kind: type) -> Any:
    """``record[key]``, checked for presence and type."""
    if key not in record:
        raise _Reject(f"missing field '{key}'")
    value = record[key]
    if not isinstance(value, kind):
        raise _Reject(f"field '{key}' is {type(value).__name__}, expected {kind.__name__}")
    return value


def _check_question(qa: Any, context: str, max_drift: int) -> tuple[str, tuple[GoldAnswer, ...], int]:
    """Validate one question record.

    Returns:
        The question text, its answers, and how many answers were repaired.
    """
    if not isinstance(qa, dict):
        raise _Reject("question record is not an object")
    if not context.strip():
        raise _Reject("empty context")
    question = _require(qa, "question", str)
    if not question.strip():
        raise _Reject("empty question")
    if qa.get("is_impossible") is True:
        return question, (), 0
    answers, repaired = [], 0
    for i, answer in enumerate(_require(qa, "answers", list)):
        if not isinstance(answer, dict):
            raise _Reject(f"answer {i} is not an object")
        if "answer_start" not in answer:
            raise _Reject(f"answer {i}: missing field 'answer_start'")
        try:
            gold, fixed = _find_answer(
                context, _require(answer, "text", str), answer["answer_start"], max_drift
            )
        except _Reject as e:
            raise _Reject(f"answer {i}: {e}") from e
        answers.append(gold)
        repaired += fixed
    return question, tuple(answers), repaired


# ----------------------------------------------------------------------------------------------------
# Whole files


def _qa_id(qa: Any, title: str, p_index: int, q_index: int) -> str:
    """The question's id, or a positional stand-in when it has none."""
    if isinstance(qa, dict) and isinstance(qa.get("id"), (str, int)) and str(qa["id"]).strip():
        return str(qa["id"])
    return f"<{title} paragraph {p_index} question {q_index}>"


def _read_paragraph(
    paragraph: Any,
    where: tuple[str, str, int],
    counts: _Counts,
    seen: dict[str, str],
    out: list[SquadExample],
    max_drift: int,
) -> None:
    """Append the usable questions of one paragraph to ``out``."""
    source, title, p_index = where
    counts.paragraphs += 1
    qas = paragraph.get("qas") if isinstance(paragraph, dict) else None
    context = paragraph.get("context") if isinstance(paragraph, dict) else None
    if not isinstance(qas, list):
        counts.rejected.append(
            Rejection(
                f"<{title} paragraph {p_index}>",
                f"{source}: article '{title}' paragraph {p_index}: missing 'qas' list",
            )
        )
        return
    for q_index, qa in enumerate(qas):
        qid = _qa_id(qa, title, p_index, q_index)
        counts.questions += 1
        if qid in seen:
            raise SquadFormatError(f"{source}: duplicate question id '{qid}' (also in {seen[qid]})")
        seen[qid] = source
        try:
            if not isinstance(context, str):
                raise _Reject("missing field 'context'")
            question, answers, repaired = _check_question(qa, context, max_drift)
        except _Reject as e:
            counts.rejected.append(Rejection(qid, f"{source}: article '{title}', question {qid}: {e}"))
            continue
        counts.answers += len(answers)
        counts.unanswerable += not answers
        counts.repaired += repaired
        out.append(SquadExample(qid, title, context, question, answers, source))


def parse_squad(
    document: Any, source: str, *, seen: dict[str, str] | None = None, max_drift: int = DEFAULT_MAX_DRIFT
) -> SquadData:
    """Flatten a parsed SQuAD document into checked examples.

    Args:
        document: the parsed JSON (``{"data": [{"title", "paragraphs": [...]}, ...]}``); extra keys
            (as written by annotation tools) are ignored.
        source: the file name used in messages.
        seen: question ids already loaded (id -> file), to catch duplicates across files; updated.
        max_drift: how far (in characters) an answer may sit from its ``answer_start`` and be repaired.

    Returns:
        The usable examples and the report.

    Raises:
        SquadFormatError: the document is not SQuAD-shaped, or a question id repeats.
    """
    seen = {} if seen is None else seen
    counts, examples = _Counts(), []
    for a_index, article in enumerate(_articles(Path(source), document)):
        counts.articles += 1
        title = str(article.get("title", f"#{a_index}")) if isinstance(article, dict) else f"#{a_index}"
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            counts.rejected.append(
                Rejection(f"<{title}>", f"{source}: article '{title}': missing 'paragraphs' list")
            )
            continue
        for p_index, paragraph in enumerate(paragraphs):
            _read_paragraph(paragraph, (source, title, p_index), counts, seen, examples, max_drift)
    return SquadData(tuple(examples), counts.frozen(), (source,))


def load_squad(paths: Sequence[str | Path], *, max_drift: int = DEFAULT_MAX_DRIFT) -> SquadData:
    """Load and check one or more SQuAD files (``.json`` or ``.json.gz``, v1.1 or v2.0).

    Args:
        paths: the files; their examples are concatenated in order.
        max_drift: see ``parse_squad``.

    Returns:
        All usable examples and the summed report.

    Raises:
        SquadFormatError: a file cannot be read as SQuAD, or a question id repeats (within or across files).
    """
    if not paths:
        raise SquadFormatError("no SQuAD files given")
    seen: dict[str, str] = {}
    examples: list[SquadExample] = []
    report = SquadReport()
    for path in map(Path, paths):
        data = parse_squad(read_json(path), str(path), seen=seen, max_drift=max_drift)
        examples.extend(data.examples)
        report = report.merged(data.report)
        logger.info(
            "%s: %d usable questions, %d rejected", path, len(data.examples), len(data.report.rejected)
        )
    return SquadData(tuple(examples), report, tuple(str(p) for p in paths))


# ----------------------------------------------------------------------------------------------------
# Sampling and splitting


def sample_examples(
    examples: Sequence[SquadExample], limit: int | None, seed: int
) -> tuple[SquadExample, ...]:
    """A seeded random sample of ``limit`` examples, kept in their original order.

    A random sample, not the first N: SQuAD files are sorted by article, so the first N questions would
    all be about a handful of topics.
    """
    if limit is None or limit >= len(examples):
        return tuple(examples)
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return tuple(examples[i] for i in chosen)


def split_by_context(
    examples: Sequence[SquadExample], dev_fraction: float, seed: int
) -> tuple[tuple[SquadExample, ...], tuple[SquadExample, ...]]:
    """Split examples into train and dev so that no context (paragraph) is on both sides.

    Args:
        examples: the examples to split.
        dev_fraction: the share of distinct contexts that go to dev, in (0, 1).
        seed: the shuffle seed.

    Returns:
        (train, dev), each in the original order.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ConfigError(f"dev_fraction must be between 0 and 1, got {dev_fraction}")
    contexts = sorted({example.context for example in examples})
    random.Random(seed).shuffle(contexts)
    n_dev = max(1, round(len(contexts) * dev_fraction))
    dev_contexts = set(contexts[:n_dev])
    train = tuple(e for e in examples if e.context not in dev_contexts)
    dev = tuple(e for e in examples if e.context in dev_contexts)
    return train, dev


def split_articles(document: Any, source: str, dev_articles: int, seed: int) -> tuple[dict, dict]:
    """Split a parsed SQuAD document by article into (train, dev) documents.

    Args:
        document: the parsed SQuAD JSON.
        source: the file name used in messages.
        dev_articles: how many articles (chosen at random) go to dev.
        seed: the random seed.

    Returns:
        Two SQuAD documents with the same ``version`` as the input.
    """
    articles = _articles(Path(source), document)
    if not 0 < dev_articles < len(articles):
        raise ConfigError(
            f"--dev-articles must be between 1 and {len(articles) - 1} for {source}, got {dev_articles}"
        )
    dev_indices = set(random.Random(seed).sample(range(len(articles)), dev_articles))
    version = document.get("version", "1.1")
    train = {"version": version, "data": [a for i, a in enumerate(articles) if i not in dev_indices]}
    dev = {"version": version, "data": [a for i, a in enumerate(articles) if i in dev_indices]}
    return train, dev
