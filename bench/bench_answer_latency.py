"""Answer latency of the engine (the ``bot ask`` path, ``AnswerEngine.answer``) on the bundled index.

100 questions (the first 100 of ``data/diabetes-qa/dev.json``) are answered with the shipped reader
against a hybrid index of ``data/docs`` built into a temp dir, after a warm-up, by several
configurations in the same run: the served one (the defaults of ``bot/config.py``: hybrid retrieval,
``top_k`` passages, calibrated confidence, the ``auto`` reader backend) and baselines that each undo
one choice: the torch backend at the same k (the reference of the fast-reader issue, with its query
encoder on torch too), the other thread count (one, or two when one is served; each backend), fp32
and int8 ONNX Runtime, one passage, plus the engine as it was before hybrid retrieval (BM25, one
passage, torch). To be fair under a varying load,
the configurations take turns in blocks of ``BLOCK`` questions, each block after one untimed question.

It also reports, for the served backend and for torch: the resident memory (RSS) of a warmed-up
engine (each in a fresh process, so the other configurations' models do not count), and the diabetes
dev EM/F1 of the reader alone (``finetune evaluate``; ``--no-quality`` skips it).

This machine is shared: the 1-minute load average is sampled around every block and printed next to
every timing; when a configuration's mean load is above ``--max-load``, its measurement is repeated
(``--retries`` times) and the run with the lowest load is kept.

Goal: p50 under 150 ms for the served configuration on this 2-core machine. Runs before hybrid
retrieval (k=1, BM25) measured p50 28.7-30.7 ms served, 113-136 ms at k=5; the README's benchmark
table has the latest run.

Usage:
    .venv/bin/python bench/bench_answer_latency.py --top-k 5  # table (k: default HELPLINE_TOP_K's)
    .venv/bin/python bench/bench_answer_latency.py --json     # one JSON document on stdout
    .venv/bin/python bench/bench_answer_latency.py --quick    # 20 questions, served vs old defaults
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from bot.calibration import Calibration
from bot.config import SHIPPED_MODEL_DIR, Settings
from bot.engine import AnswerEngine, EngineConfig, ReaderLike, encoder_backend, make_encoder
from finetune.commands import evaluate_model
from finetune.reader import Reader
from finetune.squad import load_squad
from finetune.types import Reading
from retrieval import HybridSettings, SentenceEncoder, build_index, load_index

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "data" / "docs"
QUESTIONS = ROOT / "data" / "diabetes-qa" / "dev.json"
WARM_UP = ROOT / "data" / "diabetes-qa" / "train.json"

N_QUESTIONS = 100
N_WARM_UP = 5
BLOCK = 10
GOAL_P50_MS = 150.0
SERVED = "served"
TORCH = "torch backend, same k"
# The fast-reader issue: served p50 <= this share of the torch backend's at the same k, same answer for
# at least SAME_GOAL of the questions.
RATIO_GOAL = 0.5
SAME_GOAL = 0.97


@dataclass(frozen=True)
class Config:
    """One way of answering: passages read, threads, precision, batched or one by one."""

    name: str
    top_k: int
    threads: int  # torch.set_num_threads; 0: one per core (torch's default)
    precision: str = "auto"
    one_by_one: bool = False
    # bm25 for the engine before hybrid retrieval; None: the served settings' mode.
    retrieval_mode: str | None = None
    # The reader backend (HELPLINE_READER_BACKEND); the query encoder follows it.
    backend: str = "auto"


@dataclass
class Run:
    """The measurements of one configuration."""

    config: Config
    total_ms: list[float] = field(default_factory=list)
    retrieval_ms: list[float] = field(default_factory=list)
    reading_ms: list[float] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)
    passages_read: list[int] = field(default_factory=list)
    backend: str = ""

    @property
    def load(self) -> float:
        return statistics.fmean(self.loads) if self.loads else 0.0


class OneByOneReader:
    """A reader that reads each passage in its own forward pass (the no-batching baseline)."""

    def __init__(self, reader: ReaderLike):
        self.reader = reader

    def warm_up(self) -> None:
        self.reader.warm_up()

    @property
    def approximate(self) -> bool:
        return self.reader.approximate

    def read(
        self, question: str, contexts: Sequence[str], top_k: int = 1, *, exact: bool = False
    ) -> list[Reading]:
        return [self.reader.read(question, [c], top_k, exact=exact)[0] for c in contexts]


def configs(served: Settings, quick: bool) -> list[Config]:
    """The served configuration first, the torch backend at the same k second, then the baselines."""
    mine = Config(SERVED, served.top_k, served.reader_threads, backend=served.reader_backend)
    torch_same_k = dataclasses.replace(mine, name=TORCH, backend="torch")
    # The engine before hybrid retrieval and calibration: BM25, one passage read, torch.
    old = Config("before: bm25, k=1, torch", 1, served.reader_threads, retrieval_mode="bm25", backend="torch")
    if quick:
        return [mine, torch_same_k]
    other = 2 if served.reader_threads == 1 else 1  # the thread count the served one does not use
    return [
        mine,
        torch_same_k,
        dataclasses.replace(mine, name=f"served, {other} thread(s)", threads=other),
        dataclasses.replace(torch_same_k, name=f"torch backend, {other} thread(s)", threads=other),
        dataclasses.replace(mine, name="onnx fp32, same k", backend="onnx"),
        dataclasses.replace(mine, name="onnx int8, same k", backend="onnx-int8"),
        dataclasses.replace(mine, name="served, k=1", top_k=1),
        old,
    ]


def set_threads(threads: int) -> None:
    """torch's intra-op threads (0: one per core, torch's default)."""
    torch.set_num_threads(threads or os.cpu_count() or 1)


def make_engines(settings: Settings, plan: Sequence[Config]) -> dict[str, AnswerEngine]:
    """One engine per configuration, sharing the indexes (one per encoder runtime) and the readers
    (one per backend, precision and, for ONNX, thread count: a session's threads are fixed)."""
    hybrid_settings = HybridSettings(settings.retrieval_mode, settings.dense_weight)
    hybrids: dict[str, object] = {}
    lexical = load_index(settings.index_dir)
    # Fitted on hybrid evidence: the BM25 baseline decides without it.
    calibration = Calibration.load(settings.served_model_dir())
    readers: dict[tuple, Reader] = {}
    engines = {}
    for config in plan:
        encoder_backend_name = encoder_backend(config.backend)
        if encoder_backend_name not in hybrids:
            engine_config = EngineConfig.from_settings(settings)
            encoder = make_encoder(
                dataclasses.replace(
                    engine_config, reader_threads=config.threads, reader_backend=config.backend
                )
            )  # the served passage and query encoders, on this configuration's runtime
            hybrids[encoder_backend_name] = load_index(settings.index_dir, encoder, hybrid_settings)
        hybrid = hybrids[encoder_backend_name]
        key = (config.backend, config.precision, config.threads if config.backend != "torch" else None)
        if key not in readers:
            reader = Reader(
                settings.served_model_dir(),
                max_answer_length=settings.max_answer_tokens,
                precision=config.precision,
                backend=config.backend,
                num_threads=config.threads or None,
            )
            reader.warm_up()
            readers[key] = reader
        reader_like: ReaderLike = readers[key]
        if config.one_by_one:
            reader_like = OneByOneReader(reader_like)
        changes: dict = {
            "top_k": config.top_k, "reader_threads": config.threads, "reader_backend": config.backend,
        }  # fmt: skip
        if config.retrieval_mode is not None:
            changes["retrieval_mode"] = config.retrieval_mode
        engine_settings = settings.model_copy(update=changes)
        index = lexical if engine_settings.retrieval_mode == "bm25" else hybrid
        engines[config.name] = AnswerEngine.from_settings(
            engine_settings,
            reader=reader_like,
            index=index,
            calibration=calibration if index is hybrid else None,
        )
    return engines


def measure_block(engine: AnswerEngine, run: Run, questions: Sequence[str]) -> None:
    """Answer one block of questions after one untimed answer (the thread pool settles)."""
    set_threads(run.config.threads)
    engine.answer(questions[0])
    run.loads.append(os.getloadavg()[0])
    for question in questions:
        started = time.perf_counter()
        answer = engine.answer(question)
        run.total_ms.append((time.perf_counter() - started) * 1000.0)
        run.retrieval_ms.append(answer.timings.retrieval_ms)
        run.reading_ms.append(answer.timings.reading_ms)
        run.answers.append(answer.text)
        run.passages_read.append(answer.passages_read)
    run.backend = engine.backend
    run.loads.append(os.getloadavg()[0])


def measure(engines: dict[str, AnswerEngine], plan: Sequence[Config], questions: Sequence[str]) -> list[Run]:
    """All configurations over all questions, taking turns block by block."""
    runs = [Run(config) for config in plan]
    for begin in range(0, len(questions), BLOCK):
        block = questions[begin : begin + BLOCK]
        for run in runs:
            measure_block(engines[run.config.name], run, block)
        print(
            f"  {begin + len(block)}/{len(questions)} questions, load {os.getloadavg()[0]:.1f}",
            file=sys.stderr,
        )
    return runs


def remeasure_if_loaded(
    engines: dict[str, AnswerEngine], runs: list[Run], questions: Sequence[str], max_load: float, retries: int
) -> list[Run]:
    """Measure again any configuration whose mean load was above ``max_load``; keep the calmer run."""
    for i, run in enumerate(runs):
        for attempt in range(retries):
            if runs[i].load <= max_load:
                break
            print(
                f"  {run.config.name}: load {runs[i].load:.1f} > {max_load}, measuring again ({attempt + 1})",
                file=sys.stderr,
            )
            again = measure(engines, [run.config], questions)[0]
            if again.load < runs[i].load:
                runs[i] = again
    return runs


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    return float(np.percentile(values, q))


def summarise(runs: Sequence[Run]) -> list[dict]:
    """One row per configuration: p50/p95 total, p50 retrieval and reading, load, ratios to served and
    to the torch backend, answers the same as served's and as torch's."""
    served = next(r for r in runs if r.config.name == SERVED)
    reference = next(r for r in runs if r.config.name == TORCH)
    served_p50 = percentile(served.total_ms, 50)
    torch_p50 = percentile(reference.total_ms, 50)
    rows = []
    for run in runs:
        p50 = percentile(run.total_ms, 50)
        same = sum(a == b for a, b in zip(run.answers, served.answers, strict=True))
        same_torch = sum(a == b for a, b in zip(run.answers, reference.answers, strict=True))
        rows.append({
            "config": run.config.name, "backend": run.backend, "top_k": run.config.top_k,
            "threads": run.config.threads, "precision": run.config.precision,
            "one_by_one": run.config.one_by_one,
            "passages_read_p50": statistics.median(run.passages_read),
            "p50_ms": round(p50, 1), "p95_ms": round(percentile(run.total_ms, 95), 1),
            "retrieval_p50_ms": round(percentile(run.retrieval_ms, 50), 2),
            "reading_p50_ms": round(percentile(run.reading_ms, 50), 1),
            "reading_p95_ms": round(percentile(run.reading_ms, 95), 1),
            "loadavg": round(run.load, 2), "p50_vs_served": round(p50 / served_p50, 2),
            "p50_vs_torch": round(p50 / torch_p50, 2),
            "answered": sum(a is not None for a in run.answers), "same_answer_as_served": same,
            "same_answer_as_torch": same_torch,
        })  # fmt: skip
    return rows


def print_table(rows: Sequence[dict], questions: int) -> None:
    """The human-readable report."""
    print(f"answer latency over {questions} questions (ms; load = mean 1-min load average during the run)")
    header = (
        f"{'config':<38} {'p50':>7} {'p95':>7} {'retr p50':>8} {'read p50':>8} {'load':>5} {'x served':>8}"
    )
    print(header + f" {'x torch':>7} {'answered':>8} {'same':>5} {'=torch':>6}  backend")
    for r in rows:
        print(
            f"{r['config']:<38} {r['p50_ms']:>7.1f} {r['p95_ms']:>7.1f} {r['retrieval_p50_ms']:>8.2f}"
            f" {r['reading_p50_ms']:>8.1f} {r['loadavg']:>5.2f} {r['p50_vs_served']:>8.2f}"
            f" {r['p50_vs_torch']:>7.2f} {r['answered']:>8} {r['same_answer_as_served']:>5}"
            f" {r['same_answer_as_torch']:>6}  {r['backend']} (k={r['top_k']}, {r['threads']} thr)"
        )
    served = rows[0]
    verdict = "met" if served["p50_ms"] < GOAL_P50_MS else "NOT met"
    print(f"goal p50 < {GOAL_P50_MS:.0f} ms: {verdict}", end=" ")
    print(f"(served p50 {served['p50_ms']:.1f} ms, load {served['loadavg']})")
    print("'same' / '=torch': answers identical to the served configuration's / the torch backend's")


def questions_from(path: Path, n: int) -> list[str]:
    """The first ``n`` questions of a SQuAD file."""
    return [example.question for example in load_squad([path]).examples[:n]]


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def warmed_engine_rss(settings: Settings) -> dict:
    """The RSS of one engine on ``settings``, warmed up by ``N_WARM_UP`` answers (run in a fresh process)."""
    engine = AnswerEngine.from_settings(settings)
    engine.warm_up()
    for question in questions_from(WARM_UP, N_WARM_UP):
        engine.answer(question)
    return {"backend": engine.backend, "rss_mb": round(rss_mb(), 1)}


def measure_rss(index_dir: Path, top_k: int, backend: str) -> dict:
    """``warmed_engine_rss`` for a backend, in a child process (so nothing else loaded here counts)."""
    command = [
        sys.executable, __file__, "--rss-of", backend, "--index", str(index_dir), "--top-k", str(top_k),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def quality(backends: Sequence[str]) -> list[dict]:
    """Diabetes dev EM/F1 of the shipped reader on each backend (the reader alone, gold contexts)."""
    rows = []
    for backend in backends:
        report = evaluate_model(SHIPPED_MODEL_DIR, QUESTIONS, backend=backend)
        rows.append({"backend": report.backend, "exact_match": round(report.exact_match, 2),
                     "f1": round(report.f1, 2), "n": report.n, "seconds": report.seconds})  # fmt: skip
        print(f"  dev EM/F1 on {report.backend}: {report.exact_match:.2f} / {report.f1:.2f}", file=sys.stderr)
    return rows


def verdict(rows: Sequence[dict], scores: Sequence[dict], rss: Sequence[dict], questions: int) -> dict:
    """The fast-reader issue's goals, checked on this run."""
    served, reference = rows[0], rows[1]
    result = {
        "p50_ratio": served["p50_vs_torch"], "p50_ratio_goal": RATIO_GOAL,
        "same_answers": round(served["same_answer_as_torch"] / questions, 3), "same_goal": SAME_GOAL,
        "passages_read_p50": served["passages_read_p50"], "served_p50_ms": served["p50_ms"],
        "torch_p50_ms": reference["p50_ms"], "rss": list(rss),
    }  # fmt: skip
    if len(scores) == 2:
        result["em_delta"] = round(scores[0]["exact_match"] - scores[1]["exact_match"], 2)
        result["f1_delta"] = round(scores[0]["f1"] - scores[1]["f1"], 2)
    return result


def print_verdict(result: dict, scores: Sequence[dict]) -> None:
    """The goals, met or not."""
    ratio_ok = result["p50_ratio"] <= RATIO_GOAL
    same_ok = result["same_answers"] >= SAME_GOAL
    print(
        f"served vs torch at the same k: p50 {result['served_p50_ms']} vs {result['torch_p50_ms']} ms ="
        f" {result['p50_ratio']:.2f}x (goal <= {RATIO_GOAL}: {'met' if ratio_ok else 'NOT met'}); same answer"
        f" {result['same_answers']:.1%} (goal >= {SAME_GOAL:.0%}: {'met' if same_ok else 'NOT met'});"
        f" passages read p50 {result['passages_read_p50']}"
    )
    for row in scores:
        print(f"diabetes dev, {row['backend']}: EM {row['exact_match']:.2f}, F1 {row['f1']:.2f} ({row['n']})")
    if "em_delta" in result:
        ok = abs(result["em_delta"]) <= 0.5 and abs(result["f1_delta"]) <= 0.5
        print(f"EM/F1 served - torch: {result['em_delta']:+.2f} / {result['f1_delta']:+.2f} "
              f"(goal within 0.5: {'met' if ok else 'NOT met'})")  # fmt: skip
    for row in result["rss"]:
        print(f"RSS of a warmed-up engine, {row['backend']}: {row['rss_mb']:.0f} MB")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="20 questions, served vs the torch backend")
    parser.add_argument(
        "--max-load", type=float, default=3.0, help="repeat a run whose mean load is above this"
    )
    parser.add_argument("--retries", type=int, default=1, help="how often a loaded run is repeated")
    parser.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    parser.add_argument("--index", type=Path, default=None, help="a built hybrid index of data/docs to reuse")
    parser.add_argument("--top-k", type=int, default=None, help="passages read (default: HELPLINE_TOP_K's)")
    parser.add_argument("--no-quality", action="store_true", help="skip the dev EM/F1 and RSS measurements")
    parser.add_argument("--rss-of", default=None, help=argparse.SUPPRESS)  # the child of measure_rss
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    n = 20 if args.quick else N_QUESTIONS
    questions = questions_from(QUESTIONS, n)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        index_dir = args.index or Path(tmp) / "index"
        overrides = {"top_k": args.top_k} if args.top_k else {}
        settings = Settings(_env_file=None, index_dir=index_dir, model_dir=SHIPPED_MODEL_DIR, **overrides)
        if args.rss_of is not None:
            print(json.dumps(warmed_engine_rss(settings.model_copy(update={"reader_backend": args.rss_of}))))
            return
        if args.index is None:
            build_index(DOCS, settings.index_dir, encoder=SentenceEncoder())
        plan = configs(settings, args.quick)
        engines = make_engines(settings, plan)
        for config in plan:  # warm-up: first calls allocate and pick kernels
            set_threads(config.threads)
            for question in questions_from(WARM_UP, N_WARM_UP):
                engines[config.name].answer(question)
        runs = measure(engines, plan, questions)
        runs = remeasure_if_loaded(engines, runs, questions, args.max_load, args.retries)
        rows = summarise(runs)
        scores: list[dict] = []
        rss: list[dict] = []
        if not args.no_quality:
            del engines
            rss = [measure_rss(index_dir, settings.top_k, b) for b in (settings.reader_backend, "torch")]
            scores = quality([settings.reader_backend, "torch"])
        result = verdict(rows, scores, rss, len(questions))
    if args.json:
        print(
            json.dumps(
                {
                    "questions": len(questions),
                    "cores": os.cpu_count(),
                    "goal_p50_ms": GOAL_P50_MS,
                    "rows": rows,
                    "quality": scores,
                    "verdict": result,
                }
            )
        )
    else:
        print_table(rows, len(questions))
        print_verdict(result, scores)


if __name__ == "__main__":
    main()
