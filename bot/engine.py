"""The answer engine: hybrid retrieval + one batched reader call + calibrated decision, hot-swappable.

No telegram here: the Telegram handlers, ``bot ask`` and the benchmarks all call ``AnswerEngine``.
The scoring itself is in ``bot.fusion`` (pure functions), the confidence model in ``bot.calibration``,
the answer types in ``bot.answer``; this module holds the components (reader, index, query encoder,
calibration), how they are loaded, and how they are swapped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bot.answer import Answer, Timings
from bot.calibration import Calibration
from bot.config import served_model_dir
from bot.definitions import Definitions, Source
from bot.fusion import (
    Candidate,
    Decision,
    Scoring,
    answer_threshold,
    decide,
    likeliest,
    margin,
    needs_recheck,
    rank_candidates,
)
from bot.headings import Headings
from bot.quoting import quote_around
from bot.tables import with_table_row
from finetune.runtime import AUTO, OPENVINO, TORCH, auto_cpu_backend
from finetune.types import Reading, Span
from retrieval import HybridSettings, IndexReport, Passage, ScoredPassage, build_index, load_index
from retrieval.synonyms import SynonymTable

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger(__name__)

# Passages re-read exactly on a close call (bot.fusion.needs_recheck): the likeliest two candidates'. The
# offline measurement behind TUNED_RECHECK_MARGIN (426 dev questions, margin 0.08): re-reading one gave
# torch's answer for 97.2% of them, two 98.1%, three 98.1%.
RECHECK_PASSAGES = 2
# Re-exported: callers that build or read answers from the engine module keep working.
__all__ = ["Answer", "AnswerEngine", "Candidate", "EngineConfig", "Evidence", "Scoring", "Timings"]


class ReaderLike(Protocol):
    """What the engine needs from a reader (``finetune.reader.Reader`` or a test fake)."""

    def warm_up(self) -> None: ...

    def read(
        self, question: str, contexts: Sequence[str], top_k: int = 1, *, exact: bool = False
    ) -> list[Reading]: ...

    @property
    def approximate(self) -> bool:
        """True when ``read(..., exact=True)`` reads otherwise (an int8 reader: on its fp32 export)."""
        ...


class SearchIndex(Protocol):
    """What the engine needs from an index (``retrieval.BM25Index`` or a test fake)."""

    passages: Sequence[Passage]
    synonyms: SynonymTable

    def search(self, query: str, top_k: int = 5) -> list[ScoredPassage]: ...


@dataclass(frozen=True)
class EngineConfig:
    """What the engine needs from the bot's settings (no token, no Telegram knobs).

    Attributes:
        model_dir: the reader to serve.
        fallback_model_dir: served while ``model_dir`` holds no model (the shipped reader when
            ``model_dir`` is the untouched default); None makes a missing model an error.
        index_dir: the index to serve.
        docs_dir: the documents ``reindex()`` reads.
        scoring: how the answer is chosen and the threshold override.
        top_k: passages retrieved and read per question.
        retrieval: hybrid, bm25 or dense search and the fusion weight.
        encoder_dir: the passage encoder (None: the packaged all-MiniLM-L6-v2).
        query_encoder_dir: the fine-tuned question encoder (None: questions use the passage encoder).
        max_answer_tokens: the longest answer span, in tokens (None: the model's reader_config.json).
        reader_threads: CPU threads for the reader and the query encoder (0: the runtime's default).
        reader_backend: ``auto``, ``torch``, ``onnx``, ``onnx-int8`` or ``openvino`` (``finetune.runtime``).
        reader_export_dir: where the ONNX exports live (None: beside the model's weights).
    """

    model_dir: Path
    fallback_model_dir: Path | None
    index_dir: Path
    docs_dir: Path
    scoring: Scoring
    top_k: int
    max_answer_tokens: int | None
    reader_threads: int
    retrieval: HybridSettings = HybridSettings()
    encoder_dir: Path | None = None
    query_encoder_dir: Path | None = None
    reader_backend: str = "auto"
    reader_export_dir: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> EngineConfig:
        """The engine's part of the bot's settings."""
        return cls(
            model_dir=settings.model_dir,
            fallback_model_dir=settings.model_fallback(),
            index_dir=settings.index_dir,
            docs_dir=settings.docs_dir,
            scoring=Scoring(
                settings.retrieval_weight, settings.min_confidence, settings.spans_per_passage,
                settings.recheck_margin,
            ),  # fmt: skip
            top_k=settings.top_k,
            max_answer_tokens=settings.max_answer_tokens,
            reader_threads=settings.reader_threads,
            retrieval=HybridSettings(mode=settings.retrieval_mode, dense_weight=settings.dense_weight),
            encoder_dir=settings.encoder_dir,
            query_encoder_dir=settings.query_encoder_dir,
            reader_backend=settings.reader_backend,
            reader_export_dir=settings.reader_export_dir,
        )


@dataclass(frozen=True)
class Evidence:
    """What one question's retrieval and reading produced, before fusion.

    Attributes:
        retrieved: the passages, best first.
        readings: the reader's output, one per passage, in the same order.
        retrieval_ms: time spent searching the index.
        reading_ms: time spent in the reader.
    """

    retrieved: tuple[ScoredPassage, ...]
    readings: tuple[Reading, ...]
    retrieval_ms: float
    reading_ms: float


# Below this calibrated confidence a declined question gets no "closest page" (in `make demo`, "Which
# football team won the 1998 world cup?" scores 0.01 and would point to "Hypoglycemia"; the declined
# diabetes questions score 0.27-0.55 and their closest page is the right one to read).
POINTER_MIN_CONFIDENCE = 0.05


# Direct answers (``Places``): at most this many sources are read (each one sentence, one section or one
# opening passage), and the answer is the first source's best span that beats its no-answer score.
MAX_DIRECT_READS = 3
DIRECT_MIN_MARGIN = 0.0
# Their confidence: the share of them that is right, measured, rounded down. They bypass the calibrated
# threshold, so this is the only figure a member's answer carries.
DIRECT_CONFIDENCE = {
    # Diabetes dev: 6 of the 7 definition answers reach F1 0.5 with the annotated answer (the seventh
    # says the same in other words); bench/probe_medquad_style.py: 54 of its 57 definition answers
    # define the term asked (read one by one).
    "definition": 0.9,
    # bench/probe_medquad_style.py: all 47 section answers come from the gold section, 29 of them the
    # introduction of a symptoms table (a pointer to the page's list more than an answer); asked in
    # MedQuAD's own words instead ("What are the symptoms of X ?"), 46 of 52 answered, all from it.
    "section": 0.9,
}


@dataclass(frozen=True)
class Places:
    """Where the documents answer some questions directly, built from an index's passages: the
    sentences that define terms (``bot.definitions``) and the documents' own questions
    (``bot.headings``)."""

    definitions: Definitions
    headings: Headings

    @classmethod
    def of(cls, index: SearchIndex) -> Places:
        definitions = Definitions.from_passages(index.passages, index.synonyms)
        return cls(definitions, Headings.from_passages(index.passages))

    @classmethod
    def nowhere(cls) -> Places:
        return cls(Definitions.empty(), Headings({}))

    def sources(self, question: str, retrieved_doc_ids: Sequence[str] = ()) -> list[tuple[str, Source]]:
        """(basis, source) to read, best first: definitions, then the documents' own questions."""
        return [
            *(("definition", s) for s in self.definitions.sources(question, retrieved_doc_ids)),
            *(("section", s) for s in self.headings.sources(question, retrieved_doc_ids)),
        ]


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class AnswerEngine:
    """Answers questions from the indexed documents; swaps model and index without downtime.

    Args:
        config: paths and answering knobs (``EngineConfig.from_settings``).
        reader: a ready reader to use instead of loading ``config.model_dir``.
        index: a ready index to use instead of loading ``config.index_dir``.
        reader_factory: builds a warmed-up reader from a model directory (for ``reload``); default
            ``finetune.reader.Reader``.
        calibration: the confidence model to use with a ``reader`` passed in (a loaded model's own
            ``calibration.json`` is used otherwise).
        encoder: the query encoder for dense/hybrid search (default: built from ``config.encoder_dir``).
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        reader: ReaderLike | None = None,
        index: SearchIndex | None = None,
        reader_factory: Callable[[Path], ReaderLike] | None = None,
        calibration: Calibration | None = None,
        encoder: Any = None,
    ):
        self.config = config
        self._reader_factory = reader_factory or self._load_reader
        self._reader = reader
        self._index = index
        self._places = Places.nowhere()  # built with the index at warm-up
        self._calibration = calibration
        self._encoder = encoder
        self._reader_warm = False
        # What is being served: reindex() rebuilds the index that is served, not the configured one.
        self._index_dir = config.index_dir
        self._model_dir: Path | None = None
        # Once config.model_dir has been served, its absence means a training run is renaming a new
        # model into place: a reload then fails (and can be retried) rather than fall back.
        self._served_configured_model = False
        # Guards the two references: answer() takes a consistent (reader, index) pair, reload()
        # replaces them together, so a request in flight finishes with the objects it started with.
        self._swap_lock = threading.Lock()
        # Serialises warm-up, reload and reindex: each builds heavy objects, one at a time is enough.
        self._admin_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **components: Any) -> AnswerEngine:
        """An engine for the bot's settings; ``components`` are ``__init__``'s keyword arguments."""
        return cls(EngineConfig.from_settings(settings), **components)

    @property
    def is_warm(self) -> bool:
        """True once the reader and the index are loaded."""
        return self._reader_warm and self._index is not None

    @property
    def backend(self) -> str:
        """The reader's backend (``torch``, ``onnx``, ``onnx-int8``, ``openvino``; a test fake's name or
        ``unknown``)."""
        return str(getattr(self._reader, "backend", "unknown"))

    @property
    def model_dir(self) -> Path | None:
        """The model directory being served (None before warm-up or with a reader passed in)."""
        return self._model_dir

    @property
    def index_dir(self) -> Path:
        """The index directory being served (``reindex()`` rebuilds this one)."""
        return self._index_dir

    def served_model_dir(self) -> Path:
        """The model directory ``reload()`` serves by default.

        Raises:
            ModelDirError: ``config.model_dir`` holds no model and falling back is not allowed.
        """
        fallback = None if self._served_configured_model else self.config.fallback_model_dir
        return served_model_dir(self.config.model_dir, fallback)

    def warm_up(self) -> None:
        """Load the reader and the index (once); later calls do nothing.

        Raises:
            IndexLoadError: the index directory is missing or broken, or holds no vectors of the
                encoder in hybrid/dense mode.
            ModelDirError: the configured model directory holds no model.
            CalibrationError: the model's calibration.json is broken.
            OSError, ValueError: the model directory cannot be loaded.
        """
        with self._admin_lock:
            if self.is_warm:
                return
            # The index first: it loads in a fraction of a second, so a bad path fails before the
            # model's seconds of loading.
            index = self._index or self._load_index(self._index_dir)
            model_dir = None if self._reader is not None else self.served_model_dir()
            reader = self._reader or self._reader_factory(model_dir)
            calibration = self._calibration if model_dir is None else load_calibration(model_dir)
            if self._reader is not None:
                reader.warm_up()
            # The query encoder loads (and, on ONNX, exports itself) now rather than at the first
            # question, and before the freed heap is returned below.
            encoder_warm_up = getattr(self._encoder, "warm_up", None)
            if encoder_warm_up is not None:
                encoder_warm_up()
            places = Places.of(index)
            with self._swap_lock:
                self._reader, self._index, self._reader_warm = reader, index, True
                self._places = places
                self._calibration = calibration
                self._note_model(model_dir)
        return_freed_memory()
        logger.info("answer engine ready (reader backend %s)", self.backend)

    def answer(self, question: str) -> Answer:
        """Answer one question from the top-k passages.

        Args:
            question: the member's question (non-empty).

        Returns:
            The best candidate when its calibrated confidence reaches the threshold, else an Answer
            with ``text=None`` that points to the passage most worth reading.
        """
        reader, index, places = self._serving(question)
        retrieved, retrieval_ms = self._retrieve(index, question, self.config.top_k)
        direct = self._read_places(reader, question, retrieved, places, retrieval_ms)
        if direct is not None:
            return direct
        evidence = self._read(reader, question, retrieved, retrieval_ms)
        started = time.perf_counter()
        candidates, decision = self._choose(evidence)
        rechecked = 0
        if reader.approximate and needs_recheck(decision, self._calibration, self.config.scoring):
            evidence, rechecked = self._recheck(reader, question, evidence, candidates)
            candidates, decision = self._choose(evidence)
        timings = Timings(
            evidence.retrieval_ms, evidence.reading_ms,
            evidence.retrieval_ms + evidence.reading_ms + _ms_since(started),
        )  # fmt: skip
        answer = self._decide(evidence.retrieved, decision, timings)
        return dataclasses.replace(answer, passages_rechecked=rechecked) if rechecked else answer

    def _choose(self, evidence: Evidence) -> tuple[list[Candidate], Decision]:
        """The ranked candidates of the readings and the decision on them."""
        scoring = self.config.scoring
        candidates = rank_candidates(
            evidence.retrieved, evidence.readings, scoring.retrieval_weight, scoring.spans_per_passage
        )
        return candidates, decide(candidates, self._calibration, scoring)

    def _recheck(
        self, reader: ReaderLike, question: str, evidence: Evidence, candidates: Sequence[Candidate]
    ) -> tuple[Evidence, int]:
        """Re-read the passages of the ``RECHECK_PASSAGES`` likeliest candidates exactly (a close call
        on an int8 reader) and put those readings in place of the int8 ones."""
        started = time.perf_counter()
        chosen = [c.passage_index for c, _ in likeliest(candidates, self._calibration)[:RECHECK_PASSAGES]]
        contexts = [evidence.retrieved[i].passage.text for i in chosen]
        exact = reader.read(question, contexts, top_k=self.config.scoring.spans_per_passage, exact=True)
        readings = list(evidence.readings)
        for i, reading in zip(chosen, exact, strict=True):
            readings[i] = reading
        reading_ms = evidence.reading_ms + _ms_since(started)
        return dataclasses.replace(evidence, readings=tuple(readings), reading_ms=reading_ms), len(chosen)

    @property
    def calibration(self) -> Calibration | None:
        """The confidence model in use (None: the reader's own probability)."""
        return self._calibration

    @property
    def answer_threshold(self) -> float:
        """The confidence below which the engine declines (``bot.fusion.answer_threshold``)."""
        return answer_threshold(self._calibration, self.config.scoring)

    def gather(self, question: str, top_k: int) -> Evidence:
        """Retrieve the top-k passages and read them all in one batched reader call (no fusion yet).

        ``answer()`` decides from what this returns; ``bench/tune_engine.py`` calls it once per question
        with the largest k it tries and decides offline with ``rank_candidates`` on the first k passages
        (a passage's reading does not depend on the other passages read with it).

        Args:
            question: the question (non-empty).
            top_k: passages to retrieve and read.

        Returns:
            The passages, their readings and the time each step took.
        """
        reader, index, _ = self._serving(question)
        retrieved, retrieval_ms = self._retrieve(index, question, top_k)
        return self._read(reader, question, retrieved, retrieval_ms)

    def _serving(self, question: str) -> tuple[ReaderLike, SearchIndex, Places]:
        """The reader, index and direct places to answer ``question`` with (warming up on first use)."""
        if not question.strip():
            raise ValueError("question is empty")
        if not self.is_warm:
            self.warm_up()
        with self._swap_lock:
            return self._reader, self._index, self._places

    @staticmethod
    def _retrieve(index: SearchIndex, question: str, top_k: int) -> tuple[tuple[ScoredPassage, ...], float]:
        started = time.perf_counter()
        return tuple(index.search(question, top_k=top_k)), _ms_since(started)

    def _read(
        self, reader: ReaderLike, question: str, retrieved: tuple[ScoredPassage, ...], retrieval_ms: float
    ) -> Evidence:
        started = time.perf_counter()
        contexts = [sp.passage.text for sp in retrieved]
        spans = self.config.scoring.spans_per_passage
        readings = tuple(reader.read(question, contexts, top_k=spans)) if retrieved else ()
        return Evidence(retrieved, readings, retrieval_ms, _ms_since(started))

    def direct_answer(self, question: str) -> Answer | None:
        """The answer ``answer()`` gives ``question`` from where the documents answer it directly (a
        definition, a document's own question), or None when it takes the ordinary path
        (``bench/tune_engine.py`` scores both paths as the engine serves them)."""
        reader, index, places = self._serving(question)
        if not places.sources(question):  # no retrieval needed to know there is nothing to read
            return None
        retrieved, retrieval_ms = self._retrieve(index, question, self.config.top_k)
        return self._read_places(reader, question, retrieved, places, retrieval_ms)

    def _read_places(
        self, reader: ReaderLike, question: str, retrieved: tuple[ScoredPassage, ...],
        places: Places, retrieval_ms: float,
    ) -> Answer | None:  # fmt: skip
        """The first convincing span where the documents answer ``question`` directly (see ``Places``),
        or None: there is no such place, or none of the first ``MAX_DIRECT_READS`` holds one."""
        started = time.perf_counter()
        sources = places.sources(question, [sp.passage.doc_id for sp in retrieved])[:MAX_DIRECT_READS]
        for read, (basis, source) in enumerate(sources, 1):
            if source.whole:
                span = Span(source.text, 0, len(source.text), score=0.0, probability=1.0)
            else:
                reading = reader.read(question, [source.text], top_k=1)[0]
                span = reading.spans[0] if reading.spans else None
                if span is None or margin(span, reading) < DIRECT_MIN_MARGIN:
                    continue
            span = dataclasses.replace(span, start=source.start + span.start, end=source.start + span.end)
            passage = source.passage
            span = with_table_row(span, passage.text)
            if all(sp.passage.id != passage.id for sp in retrieved):
                # The store logs the passages an answer was read from, so that export-feedback shows an
                # admin the one this answer came from, even when retrieval did not rank it.
                retrieved = (*retrieved, ScoredPassage(passage, 0.0))
            return Answer(
                span.text,
                DIRECT_CONFIDENCE[basis],
                passage,
                span,
                quote_around(passage.text, span.start, span.end),
                passage.title,
                passage.source,
                Timings(retrieval_ms, _ms_since(started), retrieval_ms + _ms_since(started)),
                retrieved,
                passages_read=read,
                basis=basis,
            )
        return None

    def _decide(self, retrieved: tuple[ScoredPassage, ...], decision: Decision, timings: Timings) -> Answer:
        """Turn the decision into an answer, or a pointer to the best passage."""
        best = decision.candidate
        if best is None or not decision.answer:
            # The floor is a calibrated probability; a reader's own probability is on another scale.
            off_topic = self.calibration is not None and decision.confidence < POINTER_MIN_CONFIDENCE
            return self._no_answer(retrieved, decision.confidence, timings, point=not off_topic)
        passage = retrieved[best.passage_index].passage
        return Answer(
            best.span.text,
            decision.confidence,
            passage,
            best.span,
            quote_around(passage.text, best.span.start, best.span.end),
            passage.title,
            passage.source,
            timings,
            retrieved,
            passages_read=len(retrieved),
        )

    @staticmethod
    def _no_answer(
        retrieved: tuple[ScoredPassage, ...], confidence: float, timings: Timings, *, point: bool = True
    ) -> Answer:
        """An honest "not in the documents", pointing to the best retrieved passage: when no answer is
        convincing, the retriever's first choice is the page most worth reading (a declined candidate's
        passage is, more often than not, the wrong one). ``point=False`` (an off-topic question, whose
        best passage would be a random page) points to none."""
        passage = retrieved[0].passage if retrieved and point else None
        title = passage.title if passage else None
        source = passage.source if passage else None
        return Answer(
            None,
            confidence,
            passage,
            None,
            None,
            title,
            source,
            timings,
            retrieved,
            passages_read=len(retrieved),
        )

    def reload(self, model_dir: Path | None = None, index_dir: Path | None = None) -> None:
        """Load a model and an index, then swap both in at once; requests in flight finish on the old ones.

        Args:
            model_dir: the reader to serve; default ``served_model_dir()`` (the newest one).
            index_dir: the index to serve; default ``config.index_dir``.

        Raises:
            ModelDirError: the default model directory holds no model (never a silent fallback once
                it has been served: a training run may be renaming a new model into place).
        """
        with self._admin_lock:
            model_dir = model_dir or self.served_model_dir()
            index_dir = index_dir or self.config.index_dir
            reader = self._reader_factory(model_dir)
            calibration = load_calibration(model_dir)
            index = self._load_index(index_dir)
            places = Places.of(index)
            with self._swap_lock:
                self._reader, self._index, self._reader_warm = reader, index, True
                self._places = places
                self._calibration = calibration
                self._index_dir = index_dir
                self._note_model(model_dir)
        return_freed_memory()
        logger.info("reloaded model %s and index %s", model_dir, index_dir)

    def reindex(self, docs_dir: Path | None = None) -> IndexReport:
        """Rebuild the served index from the documents, then serve it.

        Args:
            docs_dir: the documents; default ``config.docs_dir``.

        Returns:
            The build report (documents, passages, skipped files, seconds).
        """
        docs_dir = docs_dir or self.config.docs_dir
        with self._admin_lock:
            index_dir = self._index_dir
            report = build_index(docs_dir, index_dir, encoder=self.encoder)
            index = self._load_index(index_dir)
            places = Places.of(index)
            with self._swap_lock:
                self._index, self._places = index, places
        logger.info("reindexed %s into %s: %d passages", docs_dir, index_dir, report.passages)
        return report

    def _note_model(self, model_dir: Path | None) -> None:
        """Remember which model directory is served (called under the swap lock)."""
        self._model_dir = model_dir
        if model_dir == self.config.model_dir:
            self._served_configured_model = True

    @property
    def encoder(self) -> Any:
        """The encoder of hybrid and dense search (built once), None in bm25 mode: passages through
        ``encoder_dir``, questions through ``query_encoder_dir`` when one is configured."""
        if self.config.retrieval.mode == "bm25":
            return None
        if self._encoder is None:
            self._encoder = make_encoder(self.config)
        return self._encoder

    def _load_index(self, index_dir: Path) -> SearchIndex:
        return load_index(index_dir, self.encoder, self.config.retrieval)

    def _load_reader(self, model_dir: Path) -> ReaderLike:
        """Build and warm up the real reader (imported here: torch loads only when a model is served)."""
        from finetune.reader import Reader  # noqa: PLC0415 - keeps `bot --help` and the handlers torch-free

        if self.config.reader_threads:
            import torch  # noqa: PLC0415 - loaded by the Reader import above anyway

            # Process-wide: the reader is the only torch user in the bot process.
            torch.set_num_threads(self.config.reader_threads)
        reader = Reader(
            model_dir,
            max_answer_length=self.config.max_answer_tokens,
            backend=self.config.reader_backend,
            export_dir=self.config.reader_export_dir,
            num_threads=self.config.reader_threads or None,
            exact_rereads=self.config.scoring.recheck_margin > 0,
        )
        reader.warm_up()
        return reader


def make_encoder(config: EngineConfig) -> Any:
    """The configured encoder: passages through ``encoder_dir``, questions through ``query_encoder_dir``
    (the passage encoder itself when that is None).

    Raises:
        EncoderError: a folder is not a model, or the query encoder was trained for other passages.
    """
    from retrieval.encoder import dense_encoder  # noqa: PLC0415 - torch, as the reader

    return dense_encoder(
        config.encoder_dir,
        config.query_encoder_dir,
        num_threads=config.reader_threads or None,
        backend=encoder_backend(config.reader_backend),
    )


def encoder_backend(reader_backend: str) -> str:
    """The query encoder's runtime for a reader backend setting: torch with torch, OpenVINO with
    OpenVINO (``auto`` where it serves OpenVINO), else ONNX Runtime when available.

    The encoder stays fp32 on every runtime: the index's passage vectors were embedded in fp32, and
    int8 or bf16 query vectors would move the dense ranking away from them.
    """
    if reader_backend == AUTO:
        reader_backend = auto_cpu_backend().name  # on CUDA the reader is torch's; the encoder stays here
    if reader_backend in (TORCH, OPENVINO):
        return reader_backend
    return AUTO


def return_freed_memory() -> None:
    """Give the heap that loading freed back to the OS (glibc ``malloc_trim``; elsewhere nothing).

    Loading traces and exports models (the query encoder's in-memory ONNX export, a first-load reader
    export) and frees hundreds of MB, which glibc keeps in the process: bench/bench_answer_latency.py
    measured a warmed-up int8 engine at 846 MB resident without this call and 734 MB with it.
    """
    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        trim = getattr(libc, "malloc_trim", None)
    except OSError:
        return
    if trim is not None:
        trim(0)


def load_calibration(model_dir: Path) -> Calibration | None:
    """The calibration beside a model's weights; logs that confidence is uncalibrated without one."""
    calibration = Calibration.load(model_dir)
    if calibration is None:
        logger.warning(
            "model %s has no calibration.json: confidence is the reader's own probability; "
            "fit one with: bot calibrate --model-dir %s",
            model_dir,
            model_dir,
        )
    return calibration
