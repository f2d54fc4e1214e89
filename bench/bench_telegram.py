"""Throughput of the whole Telegram path with 1, 4 and 16 members asking at once.

Each member is a closed loop: send a question, wait for the bot's answer, send the next. Questions go
through real HTTP: the fake Bot API server from bot/testing/fake_telegram.py -> long polling -> handlers ->
answer engine in worker threads -> sendMessage back. The fake server and the bot share this process
(and its CPU), as a local Bot API server would share a small host.

The engine is the real one (``settings.served_model_dir()`` + the index in HELPLINE_INDEX_DIR, or one
built from HELPLINE_DOCS_DIR into a temporary folder) when a model exists; otherwise the script says so
and serves the FakeReader from bot/testing/fakes.py, which measures the Telegram plumbing alone.
Questions are the dev questions of data/diabetes-qa. The per-member rate limit is lifted (members here
ask far more than 10 a minute); Telegram's flood limit (AIORateLimiter, 30 requests/s) stays on unless
``--no-flood-limit``: every answer costs two requests (typing action + message).

Usage:
    .venv/bin/python bench/bench_telegram.py                     # 1, 4, 16 members, 48 questions each
    .venv/bin/python bench/bench_telegram.py --members 1 4 --questions 24 --fake-reader
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bot.config import Settings
from bot.engine import AnswerEngine
from bot.errors import ModelDirError
from bot.store import Store
from bot.testing.fake_telegram import FakeTelegram
from bot.testing.fakes import FakeIndex, FakeReader
from bot.testing.running import running_bot
from retrieval import build_index, load_index

ROOT = Path(__file__).resolve().parent.parent

DEV_QUESTIONS = ROOT / "data" / "diabetes-qa" / "dev.json"
UNLIMITED_PER_MEMBER = 1_000_000
ANSWER_TIMEOUT_S = 120.0
MEMBER_ID_BASE = 10_000  # chats of different levels never mix


@dataclass(frozen=True)
class Level:
    """One measured concurrency level."""

    members: int
    questions: int
    seconds: float
    p50_ms: float
    p95_ms: float

    @property
    def per_second(self) -> float:
        return self.questions / self.seconds


def dev_questions() -> list[str]:
    """The dev set's questions (SQuAD v2 JSON), in file order."""
    data = json.loads(DEV_QUESTIONS.read_text(encoding="utf-8"))
    return [
        qa["question"]
        for article in data["data"]
        for paragraph in article["paragraphs"]
        for qa in paragraph["qas"]
    ]


def make_engine(settings: Settings, fake_reader: bool, workdir: Path) -> tuple[AnswerEngine, str]:
    """The real engine when a model exists (else the FakeReader), and a line saying which."""
    try:
        model_dir, missing = settings.served_model_dir(), ""
    except ModelDirError as e:
        model_dir, missing = None, str(e)
    if fake_reader or model_dir is None:
        reason = "--fake-reader" if fake_reader else missing
        index = load_index(settings.index_dir) if settings.index_dir.exists() else FakeIndex()
        engine = AnswerEngine.from_settings(settings, reader=FakeReader(), index=index)
        return engine, f"FakeReader ({reason})"
    if not settings.index_dir.exists():
        print(f"building an index of {settings.docs_dir} in {workdir} ...", file=sys.stderr)
        build_index(settings.docs_dir, workdir / "index")
        settings = settings.model_copy(update={"index_dir": workdir / "index"})
    return AnswerEngine.from_settings(settings), f"real reader {model_dir}, index {settings.index_dir}"


async def member(
    telegram: FakeTelegram, member_id: int, questions: list[str], latencies: list[float]
) -> None:
    """Ask one question after another, each once the previous one is answered."""
    for asked, question in enumerate(questions, start=1):
        started = time.perf_counter()
        telegram.send_text(member_id, question)
        await telegram.wait_for("sendMessage", asked, chat_id=member_id, timeout=ANSWER_TIMEOUT_S)
        latencies.append((time.perf_counter() - started) * 1000.0)


async def measure(telegram: FakeTelegram, members: int, questions: list[str], total: int) -> Level:
    """``members`` members share ``total`` questions (round robin) and ask them all."""
    per_member = [
        [questions[(m + i * members) % len(questions)] for i in range(total // members)]
        for m in range(members)
    ]
    latencies: list[float] = []
    base = MEMBER_ID_BASE * members
    started = time.perf_counter()
    await asyncio.gather(*(member(telegram, base + m, qs, latencies) for m, qs in enumerate(per_member)))
    seconds = time.perf_counter() - started
    p95 = statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else latencies[0]
    return Level(members, len(latencies), seconds, statistics.median(latencies), p95)


async def bench(args: argparse.Namespace) -> None:
    questions = dev_questions()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        async with FakeTelegram() as telegram:
            overrides = {} if not args.no_flood_limit else {"telegram_max_rate": 0.0}
            settings = Settings(  # the environment's settings, except for these
                telegram_bot_token=telegram.token,
                telegram_base_url=telegram.base_url,
                db_path=workdir / "bench.db",
                rate_limit_per_minute=UNLIMITED_PER_MEMBER,
                **overrides,
            )
            engine, served = make_engine(settings, args.fake_reader, workdir)
            print(f"engine: {served}", file=sys.stderr)
            async with running_bot(settings, engine, Store.from_settings(settings)):
                await measure(telegram, 1, questions, 2)  # warm-up: first forward pass, connections
                levels = [await measure(telegram, m, questions, args.questions) for m in args.members]
    print_table(levels, served, settings)


def print_table(levels: list[Level], served: str, settings: Settings) -> None:
    flood = f"{settings.telegram_max_rate:g} req/s" if settings.telegram_max_rate else "off"
    print(f"\nTelegram path throughput ({served}; flood limit {flood}; "
          f"inference concurrency {settings.max_concurrent_answers})")  # fmt: skip
    header = (
        ("members", 7),
        ("answers", 7),
        ("seconds", 8),
        ("answers/s", 9),
        ("vs 1", 6),
        ("p50 ms", 8),
        ("p95 ms", 8),
    )
    print(" ".join(f"{name:>{width}}" for name, width in header))
    baseline = levels[0].per_second
    for level in levels:
        print(
            f"{level.members:>7} {level.questions:>7} {level.seconds:>8.2f} {level.per_second:>9.1f}"
            f" {level.per_second / baseline:>5.2f}x {level.p50_ms:>8.1f} {level.p95_ms:>8.1f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    parser.add_argument("--questions", type=int, default=48, help="questions per level (split among members)")
    parser.add_argument(
        "--fake-reader", action="store_true", help="serve the FakeReader even if a model exists"
    )
    parser.add_argument("--no-flood-limit", action="store_true", help="turn AIORateLimiter's 30 req/s off")
    args = parser.parse_args()
    bad = [m for m in args.members if m < 1 or m > args.questions]
    if bad:
        parser.error(f"--members must be between 1 and --questions ({args.questions}), got {bad}")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
