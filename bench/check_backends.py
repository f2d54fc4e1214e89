"""The held-out check of the fast-reader issue: ``bot ask --questions`` on the default backend and on
``HELPLINE_READER_BACKEND=torch``, interleaved chunk by chunk, compared.

Each chunk of ``--chunk`` questions is answered by one ``bot ask --questions FILE --json`` process per
backend, the two backends taking turns (which goes first alternates), so both see the same load.
Latency is each answer's own ``latency_ms`` (the engine's time; process start-up and model loading
are not counted). Requires (the issue's "Done when"): median ``passages_read`` >= 4, default p50 <=
0.6x torch's, the same answer (text, or both declined) for >= 97% of the questions.

Usage:
    .venv/bin/python bench/check_backends.py --index var/index --top-k 5            # all dev questions
    .venv/bin/python bench/check_backends.py --index var/index --top-k 5 --limit 100
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from finetune.squad import load_squad

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "data" / "diabetes-qa" / "dev.json"
DEFAULT = "default"
TORCH = "torch"
# The thresholds.
MIN_PASSAGES_READ = 4
RATIO_GOAL = 0.6
SAME_GOAL = 0.97


def ask(questions: Sequence[str], backend: str, index: Path, top_k: int | None, folder: Path) -> list[dict]:
    """One ``bot ask --questions --json`` process over ``questions``; its records, in order."""
    path = folder / "questions.jsonl"
    path.write_text("".join(json.dumps({"question": q}) + "\n" for q in questions), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "HELPLINE_READER_BACKEND"}
    env["HELPLINE_INDEX_DIR"] = str(index)
    if top_k is not None:
        env["HELPLINE_TOP_K"] = str(top_k)
    if backend == TORCH:
        env["HELPLINE_READER_BACKEND"] = TORCH
    command = [sys.executable, "-c", "from bot.cli import app; app()", "ask", "--questions", str(path)]
    command.append("--json")
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"bot ask failed ({backend}): {done.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between closest ranks (numpy's default)."""
    return float(np.percentile(values, q))


def compare(records: dict[str, list[dict]]) -> dict:
    """The issue's three figures and whether each goal is met."""
    fast, reference = records[DEFAULT], records[TORCH]
    p50 = {name: percentile([r["latency_ms"] for r in rs], 50) for name, rs in records.items()}
    same = sum(a["answer"] == b["answer"] for a, b in zip(fast, reference, strict=True)) / len(fast)
    passages = statistics.median(r["passages_read"] for r in fast)
    ratio = p50[DEFAULT] / p50[TORCH]
    return {
        "questions": len(fast), "backend": fast[0]["backend"], "default_p50_ms": round(p50[DEFAULT], 1),
        "torch_p50_ms": round(p50[TORCH], 1), "p50_ratio": round(ratio, 3), "same_answers": round(same, 4),
        "passages_read_median": passages,
        "answered": {name: sum(r["answer"] is not None for r in rs) for name, rs in records.items()},
        "met": {"passages_read": passages >= MIN_PASSAGES_READ, "p50_ratio": ratio <= RATIO_GOAL,
                "same_answers": same >= SAME_GOAL},
    }  # fmt: skip


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--index", type=Path, default=ROOT / "var" / "index", help="index of data/docs")
    parser.add_argument("--top-k", type=int, default=None, help="HELPLINE_TOP_K (default: the served one)")
    parser.add_argument("--data", type=Path, default=QUESTIONS, help="SQuAD file whose questions are asked")
    parser.add_argument("--limit", type=int, default=None, help="only the first N questions")
    parser.add_argument("--chunk", type=int, default=50, help="questions per bot ask process")
    args = parser.parse_args(argv)
    questions = [e.question for e in load_squad([args.data]).examples][: args.limit]
    records: dict[str, list[dict]] = {DEFAULT: [], TORCH: []}
    with tempfile.TemporaryDirectory(prefix="check-backends-") as tmp:
        for turn, begin in enumerate(range(0, len(questions), args.chunk)):
            chunk = questions[begin : begin + args.chunk]
            order = (DEFAULT, TORCH) if turn % 2 == 0 else (TORCH, DEFAULT)
            for backend in order:
                records[backend] += ask(chunk, backend, args.index, args.top_k, Path(tmp))
            print(f"  {begin + len(chunk)}/{len(questions)}, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(json.dumps(compare(records)))


if __name__ == "__main__":
    main()
