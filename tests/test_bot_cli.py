"""The ``bot`` command line: ``ask`` (contract, errors, index policy) and ``run`` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import cli
from bot.answer import Answer, Timings
from bot.calibration import Calibration
from bot.config import SHIPPED_MODEL_DIR
from bot.engine import AnswerEngine
from bot.testing.fake_telegram import FakeTelegram
from finetune.runtime import auto_cpu_backend
from retrieval import build_index
from tests.bot_fakes import CORPUS, FakeReader, free_port, write_corpus_docs

BOT = Path(sys.executable).parent / "bot"
ASK_KEYS = [
    "answer", "confidence", "passage_id", "passage", "title", "source", "latency_ms", "passages_read",
    "passages_rechecked", "backend", "basis",
]  # fmt: skip
TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
] + ["what", "is", "an", "insulinoma", "a", "tumor", "of", "the", "pancreas"]

runner = CliRunner()


@pytest.fixture
def indexed(tmp_path: Path) -> Path:
    """The tiny corpus, indexed where HELPLINE_INDEX_DIR points."""
    index_dir = Path(os.environ["HELPLINE_INDEX_DIR"])
    build_index(write_corpus_docs(tmp_path / "docs"), index_dir)
    return index_dir


@pytest.fixture
def fake_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    """`bot ask` serves the FakeReader instead of loading a model."""
    monkeypatch.setattr(cli, "check_model", lambda settings: None)
    monkeypatch.setattr(
        cli, "make_engine", lambda settings: AnswerEngine.from_settings(settings, reader=FakeReader())
    )


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised one-layer BERT QA model with a 16-word vocabulary: loads in milliseconds."""
    import torch  # noqa: PLC0415 - only the tests that run the real Reader pay for torch
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizer  # noqa: PLC0415

    folder = tmp_path_factory.mktemp("tiny-reader")
    (folder / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    BertTokenizer(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertForQuestionAnswering(config).save_pretrained(folder)
    return folder


# --- bot ask ----------------------------------------------------------------------------------


def test_the_terminal_answer_quotes_its_sentence_unless_the_answer_is_that_sentence() -> None:
    def answer(text: str, sentence: str) -> Answer:
        return Answer(text, 0.9, None, None, sentence, "T", None, Timings(1.0, 1.0, 2.0))

    assert "“A tumor is here.”" in cli.answer_text(answer("a tumor", "A tumor is here."))
    assert cli.answer_text(answer("The list follows.", "The list follows.")).count("The list follows.") == 1


@pytest.mark.usefixtures("fake_engine", "indexed")
def test_ask_json_follows_the_contract() -> None:
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert list(record) == ASK_KEYS
    title, source, text, phrase, _ = CORPUS[1]
    assert (record["answer"], record["title"], record["source"], record["passage"]) == (
        phrase,
        title,
        source,
        text,
    )
    assert 0 < record["confidence"] <= 1 and record["latency_ms"] >= 0
    assert record["backend"] == "fake"


def _ask_file(questions: Path, text: str) -> list[dict]:
    """Write ``text`` to ``questions``, run ``bot ask --questions FILE --json``: its records."""
    questions.write_text(text, encoding="utf-8")
    result = runner.invoke(cli.app, ["ask", "--questions", str(questions), "--json"])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.usefixtures("fake_engine", "indexed")
def test_ask_questions_file_prints_one_object_a_line(tmp_path: Path) -> None:
    questions = tmp_path / "questions.txt"
    records = _ask_file(questions, "What is an insulinoma?\n\nIs brittle diabetes rare?\nzebra quantum\n")
    assert [r["answer"] for r in records] == [CORPUS[1][3], None, None]
    assert records[1]["title"] == CORPUS[0][0] and records[2]["title"] is None


@pytest.mark.usefixtures("fake_engine", "indexed")
def test_ask_questions_file_takes_json_lines(tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    records = _ask_file(
        questions, '{"id": "a", "question": "What is an insulinoma?"}\nIs brittle diabetes rare?\n'
    )
    assert [r["answer"] for r in records] == [CORPUS[1][3], None]
    assert all(r["backend"] == "fake" and r["passages_read"] >= 1 for r in records)
    questions.write_text('{"id": "a", "text": "no question key"}\n', encoding="utf-8")
    result = runner.invoke(cli.app, ["ask", "--questions", str(questions), "--json"])
    assert result.exit_code == 1 and f"{questions}:1" in result.stderr and '"question"' in result.stderr


@pytest.mark.usefixtures("fake_engine", "indexed")
def test_ask_prints_a_readable_answer() -> None:
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(CORPUS[1][3])
    assert f"source: {CORPUS[1][0]} <{CORPUS[1][1]}>" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask"], "either a QUESTION or --questions"),
        (["ask", "q", "--questions", "/etc/hostname"], "either a QUESTION or --questions"),
        (["ask", "  "], "the question is empty"),
    ],
)
def test_ask_usage_errors(args: list[str], message: str) -> None:
    result = runner.invoke(cli.app, args)
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output


@pytest.mark.usefixtures("fake_engine")
def test_ask_without_an_index_says_how_to_build_one(tmp_path: Path) -> None:
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?"])
    assert result.exit_code == 1
    assert "HELPLINE_INDEX_DIR" in result.stderr and "retrieval index" in result.stderr


def test_ask_without_a_model_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPLINE_MODEL_DIR")  # the default, which may fall back to the shipped reader
    monkeypatch.setattr("bot.config.SHIPPED_MODEL_DIR", tmp_path / "no-shipped-model")
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?"])
    assert result.exit_code == 1
    assert "no reader model" in result.stderr and "finetune train" in result.stderr


@pytest.mark.usefixtures("indexed")
def test_a_mistyped_model_dir_is_an_error_not_the_shipped_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    typo = tmp_path / "var" / "modle"
    monkeypatch.setenv("HELPLINE_MODEL_DIR", str(typo))
    # Only reached if the typo were accepted: serve a fake rather than load the shipped reader.
    monkeypatch.setattr(cli, "make_engine", lambda s: AnswerEngine.from_settings(s, reader=FakeReader()))
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?"])
    assert result.exit_code == 1, result.output
    assert str(typo) in result.stderr and "HELPLINE_MODEL_DIR" in result.stderr


def test_a_mistyped_model_dir_exits_1_without_a_traceback(tmp_path: Path) -> None:
    typo = tmp_path / "some" / "typo"
    env = {**os.environ, "HELPLINE_MODEL_DIR": str(typo)}
    result = subprocess.run(
        [BOT, "ask", "What is an insulinoma?"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert str(typo) in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_untouched_default_model_dir_falls_back_to_the_shipped_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPLINE_MODEL_DIR")
    assert cli.load_settings().served_model_dir() == SHIPPED_MODEL_DIR


@pytest.mark.usefixtures("fake_engine")
def test_default_index_is_built_from_the_documents_when_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPLINE_INDEX_DIR")  # the default, var/index under the working directory
    write_corpus_docs(tmp_path / "docs")
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["answer"] == CORPUS[1][3]
    assert "building var/index" in result.stderr
    assert (tmp_path / "var" / "index").exists()


def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPLINE_TOP_K", "many")
    result = runner.invoke(cli.app, ["ask", "q"])
    assert result.exit_code == 1
    assert "HELPLINE_TOP_K" in result.stderr


@pytest.mark.integration
def test_ask_in_hybrid_mode_reads_the_top_k_with_the_real_encoder(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default retrieval: an index with MiniLM vectors, searched hybrid, k passages read."""
    from retrieval import SentenceEncoder  # noqa: PLC0415 - loads torch

    monkeypatch.setenv("HELPLINE_RETRIEVAL_MODE", "hybrid")
    monkeypatch.setenv("HELPLINE_TOP_K", "2")
    index_dir = Path(os.environ["HELPLINE_INDEX_DIR"])
    build_index(write_corpus_docs(tmp_path / "docs"), index_dir, encoder=SentenceEncoder())
    result = runner.invoke(
        cli.app, ["ask", "tumour of the pancreas", "--json", "--model-dir", str(tiny_model)]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["passages_read"] == 2 and 0.0 <= record["confidence"] <= 1.0


def test_ask_with_the_real_reader(tiny_model: Path, indexed: Path) -> None:
    result = runner.invoke(
        cli.app, ["ask", "What is an insulinoma?", "--json", "--model-dir", str(tiny_model)]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert (
        list(record) == ASK_KEYS and record["title"] == CORPUS[1][0]
    )  # BM25 finds it; the random reader may not
    assert record["backend"] == auto_cpu_backend().name  # the default, auto, on this CPU


@pytest.mark.parametrize("backend", ["torch", "onnx", "onnx-int8"])
def test_ask_serves_the_configured_backend(
    tiny_model: Path, indexed: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("HELPLINE_READER_BACKEND", backend)
    result = runner.invoke(
        cli.app, ["ask", "What is an insulinoma?", "--json", "--model-dir", str(tiny_model)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["backend"] == backend


def test_a_bad_reader_backend_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPLINE_READER_BACKEND", "tensorrt")
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?"])
    assert result.exit_code == 1 and "HELPLINE_READER_BACKEND" in result.stderr


def test_a_question_longer_than_the_readers_window_does_not_stop_the_batch(
    tiny_model: Path, indexed: Path, tmp_path: Path
) -> None:
    questions = tmp_path / "questions.txt"
    long_question = ("insulinoma " + "a " * 500)[:999]  # 495 tokens in 999 characters: over the window
    questions.write_text(f"What is an insulinoma?\n{long_question}\nWhat is a tumor?\n", encoding="utf-8")
    result = runner.invoke(
        cli.app, ["ask", "--questions", str(questions), "--json", "--model-dir", str(tiny_model)]
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and all(list(r) == ASK_KEYS for r in records)


def _garbage_model(tiny_model: Path, folder: Path) -> Path:
    """A copy of the tiny model whose weights file holds random bytes."""
    shutil.copytree(tiny_model, folder)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 40)
    return folder


def test_ask_with_garbage_weights_is_a_one_line_error(tiny_model: Path, indexed: Path, tmp_path: Path):
    broken = _garbage_model(tiny_model, tmp_path / "broken")
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?", "--model-dir", str(broken)])
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert "HELPLINE_MODEL_DIR" in line and str(broken) in line and "Traceback" not in result.output


# --- bot run ----------------------------------------------------------------------------------


def test_run_without_token_stops_with_a_message() -> None:
    result = runner.invoke(cli.app, ["run"])
    assert result.exit_code == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in result.stderr


def test_run_rejects_a_bad_webhook_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:abc")
    result = runner.invoke(cli.app, ["run", "--webhook-url", "bot.example.org/hook"])
    assert result.exit_code == 1
    assert "--webhook-url must be a full URL" in result.stderr


def test_run_with_an_unreachable_bot_api_says_which_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "1:abc")  # conftest points TELEGRAM_BASE_URL at a closed port
    monkeypatch.setattr("bot.app.configure_logging", lambda settings: None)  # keep pytest's handlers
    result = runner.invoke(cli.app, ["run"])
    assert result.exit_code == 1
    assert "cannot reach the Bot API at http://127.0.0.1:9/bot (TELEGRAM_BASE_URL)" in result.stderr
    assert "1:abc" not in result.output


def _bot_env(telegram: FakeTelegram, model: Path, token: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HELPLINE_", "TELEGRAM_"))}
    env |= {k: v for k, v in os.environ.items() if k.startswith("HELPLINE_")}  # tmp paths from conftest
    env |= {
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_BASE_URL": telegram.base_url,
        "HELPLINE_MODEL_DIR": str(model),
        "HELPLINE_POLLING_TIMEOUT": "1",
        "HELPLINE_MIN_CONFIDENCE": "0",
    }
    return env


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_bot_run_answers_then_stops_cleanly_on_sigterm(
    tmp_path: Path, tiny_model: Path, indexed: Path, mode: str
) -> None:
    async with FakeTelegram() as telegram:
        env, args = _bot_env(telegram, tiny_model, telegram.token), ["run"]
        if mode == "webhook":
            port = free_port()
            env |= {"HELPLINE_WEBHOOK_LISTEN": "127.0.0.1", "HELPLINE_WEBHOOK_PORT": str(port)}
            args += ["--webhook-url", f"http://127.0.0.1:{port}/hook"]
        process = await asyncio.create_subprocess_exec(
            BOT, *args, cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            await telegram.wait_for("getUpdates" if mode == "polling" else "setWebhook", timeout=60)
            telegram.send_text(7, "What is an insulinoma?")
            [reply] = await telegram.wait_for("sendMessage", chat_id=7, timeout=30)
            process.send_signal(signal.SIGTERM)
            returncode = await asyncio.wait_for(process.wait(), 30)
        finally:
            if process.returncode is None:
                process.kill()
        stderr = (await process.stderr.read()).decode()
    assert returncode == 0, stderr
    assert "Traceback" not in stderr
    assert telegram.token not in stderr
    assert "<b>" in reply.params["text"]  # min confidence 0: the random reader's best span is the answer
    if mode == "webhook":
        assert telegram.webhook_url.endswith("/hook") and len(telegram.webhook_secret) >= 32


async def test_bot_run_with_a_token_telegram_rejects(tmp_path: Path) -> None:
    async with FakeTelegram() as telegram:
        bad = telegram.token.replace("TEST", "BAD")
        process = await asyncio.create_subprocess_exec(
            BOT, "run", cwd=tmp_path, env=_bot_env(telegram, tmp_path / "no-model-needed", bad),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 1
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in stderr
    assert bad not in stderr and "Traceback" not in stderr


async def test_bot_run_with_garbage_weights_stops_with_one_line(
    tmp_path: Path, tiny_model: Path, indexed: Path
) -> None:
    broken = _garbage_model(tiny_model, tmp_path / "broken")
    async with FakeTelegram() as telegram:
        process = await asyncio.create_subprocess_exec(
            BOT, "run", cwd=tmp_path, env=_bot_env(telegram, broken, telegram.token),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "HELPLINE_MODEL_DIR" in errors[0] and str(broken) in errors[0]
    assert "Traceback" not in stderr


async def test_bot_run_against_a_server_that_is_no_bot_api_says_so(tmp_path: Path) -> None:
    async with FakeTelegram() as telegram:
        wrong_url = telegram.base_url.replace("/bot", "/not-the-api/bot")  # every method: 404
        env = _bot_env(telegram, tmp_path / "no-model", telegram.token) | {"TELEGRAM_BASE_URL": wrong_url}
        process = await asyncio.create_subprocess_exec(
            BOT, "run", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        _, err = await asyncio.wait_for(process.communicate(), 60)
    stderr = err.decode()
    assert process.returncode == 1
    assert f"the server at {wrong_url} (TELEGRAM_BASE_URL) is not a Telegram Bot API" in stderr
    assert "rejected TELEGRAM_BOT_TOKEN" not in stderr and "Traceback" not in stderr


@pytest.mark.usefixtures("indexed")
def test_a_bug_while_loading_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    bug = ValueError("a bug in the reader")

    class BrokenEngine:
        def warm_up(self) -> None:
            raise bug

    monkeypatch.setattr(cli, "check_model", lambda settings: None)
    monkeypatch.setattr(cli, "make_engine", lambda settings: BrokenEngine())
    result = runner.invoke(cli.app, ["ask", "What is an insulinoma?"])
    assert result.exception is bug
    assert "cannot load the reader" not in result.stderr


def test_calibrate_writes_the_served_models_calibration(
    tiny_model: Path, indexed: Path, tmp_path: Path
) -> None:
    """`bot calibrate` asks held-out questions as the bot would and writes calibration.json beside the
    weights; the engine then loads it with the model."""
    import shutil  # noqa: PLC0415

    model = tmp_path / "model"
    shutil.copytree(tiny_model, model)
    articles = []
    for title, _source, text, phrase, word in CORPUS:
        qas = [
            {
                "id": f"{word}-1",
                "question": f"what about {word}?",
                "answers": [{"text": phrase, "answer_start": text.index(phrase)}],
            },
            {
                "id": f"{word}-2",
                "question": f"is {word} sold in shops?",
                "answers": [],
                "is_impossible": True,
            },
        ]
        articles.append({"title": title, "paragraphs": [{"context": text, "qas": qas}]})
    data = tmp_path / "dev.json"
    data.write_text(json.dumps({"version": "v2.0", "data": articles}), encoding="utf-8")
    result = runner.invoke(cli.app, ["calibrate", "--data", str(data), "--model-dir", str(model), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["questions"] == 2 * len(CORPUS) and report["written"] == str(model / "calibration.json")
    calibration = Calibration.load(model)
    assert calibration is not None and calibration.top_k == report["chosen"]["k"]


def test_calibrate_names_a_missing_default_questions_file(
    tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the defaults are paths from the repository root: none here
    result = runner.invoke(cli.app, ["calibrate", "--model-dir", str(tiny_model)])
    assert result.exit_code == 1
    assert "no questions file data/diabetes-qa/dev.json, data/diabetes-qa/calib.json" in result.stderr
    assert not (tiny_model / "calibration.json").exists()
