"""The ``finetune`` CLI through typer's CliRunner: JSON documents, human output, one-line errors."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finetune.cli import app
from tests.finetune_fixtures import (
    CONTEXT_INSULIN,
    make_model_dir,
    squad_document,
    write_json,
    write_squad_file,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("cli") / "model")


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in result.output


def test_version_and_help() -> None:
    assert _invoke("--version").stdout.startswith("finetune ")
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"})  # wide: rich would cut names
    assert result.exit_code == 0
    for option in (
        "--data",
        "--dev-fraction",
        "--max-train-examples",
        "--resume",
        "--save-dtype",
        "--precision",
    ):
        assert option in result.stdout


def test_check_json_document(tmp_path: Path, model_dir: Path) -> None:
    document = squad_document()
    qas = document["data"][0]["paragraphs"][0]["qas"]
    qas[0]["answers"][0]["answer_start"] = 13  # drifted by 2: repaired
    qas.append({"id": "bad", "question": "Q?", "answers": [{"text": "glucagon", "answer_start": 0}]})
    path = write_json(tmp_path / "drift.json", document)
    result = _invoke(
        "check", path, "--json", "--tokenizer", model_dir, "--max-seq-length", "24", "--doc-stride", "8"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    counts = {"articles": 2, "paragraphs": 3, "questions": 6, "answers": 6, "unanswerable": 0, "repaired": 1}
    assert {k: summary[k] for k in counts} == counts
    assert summary["rejected"] == [
        {"id": "bad", "reason": f"{path}: article 'Insulin', question bad: answer 0: answer text 'glucagon' "
                                "is not at answer_start 0 (found 'Insulin ')"}
    ]  # fmt: skip
    assert summary["multi_window"] == 3  # q1, q2 and q4 need 26 tokens with CLS and SEPs; the rest fit 24


def test_check_human_output_lists_rejections(tmp_path: Path, model_dir: Path) -> None:
    document = squad_document()
    document["data"][0]["paragraphs"][0]["qas"][0]["question"] = ""
    result = _invoke("check", write_json(tmp_path / "f.json", document), "--tokenizer", model_dir)
    assert result.exit_code == 0
    assert (
        "4 questions" not in result.stdout
        and "5 questions" in result.stdout
        and "1 rejected" in result.stdout
    )
    assert "rejected q1: " in result.stdout and "empty question" in result.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b'{"data": [', "invalid JSON at line 1"),
        ('{"data": [{"title": "Caf\xe9"}]}'.encode("latin-1"), "not UTF-8 text"),
        (b"[1, 2]", "not a SQuAD file"),
        (b"[" * 200_000, "JSON nested too deeply"),
    ],
)
def test_check_file_errors_exit_1_with_one_line(tmp_path: Path, content: bytes, fragment: str) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)
    _assert_one_line_error(_invoke("check", path, "--json"), str(path), fragment)


def test_check_duplicate_ids_across_files(tmp_path: Path) -> None:
    first, second = write_squad_file(tmp_path, "a.json"), write_squad_file(tmp_path, "b.json")
    _assert_one_line_error(_invoke("check", first, second), "duplicate question id 'q1'")


def test_predict_json(model_dir: Path, tmp_path: Path) -> None:
    question = ("--model", model_dir, "--question", "What is insulin?")
    result = _invoke("predict", *question, "--context", CONTEXT_INSULIN, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert set(answer) == {"answer", "start", "end", "score", "probability"}
    assert answer["answer"] == CONTEXT_INSULIN[answer["start"] : answer["end"]]
    context_file = tmp_path / "context.txt"
    context_file.write_text(CONTEXT_INSULIN)
    from_file = _invoke("predict", *question, "--context-file", context_file, "--json")
    assert json.loads(from_file.stdout) == answer


def test_predict_needs_exactly_one_context(model_dir: Path) -> None:
    _assert_one_line_error(
        _invoke("predict", "--model", model_dir, "--question", "Q?"), "exactly one of --context"
    )


def test_predict_missing_model(tmp_path: Path) -> None:
    result = _invoke("predict", "--model", tmp_path / "nope", "--question", "Q?", "--context", "text")
    _assert_one_line_error(result, "no model in")


def test_evaluate_json_and_predictions_file(tmp_path: Path, model_dir: Path) -> None:
    data = write_squad_file(tmp_path)
    out = tmp_path / "predictions.json"
    result = _invoke("evaluate", "--model", model_dir, "--data", data, "--predictions", out, "--json")
    assert result.exit_code == 0, result.output
    scores = json.loads(result.stdout)
    assert scores["n"] == 5 and 0.0 <= scores["f1"] <= 100.0 and 0.0 <= scores["exact_match"] <= scores["f1"]
    predictions = json.loads(out.read_text())
    assert sorted(predictions) == ["q1", "q2", "q3", "q4", "q5"]
    limited = json.loads(
        _invoke("evaluate", "--model", model_dir, "--data", data, "--limit", "2", "--json").stdout
    )
    assert limited["n"] == 2


def test_evaluate_v2_adds_has_and_no_answer_scores(tmp_path: Path, model_dir: Path) -> None:
    document = squad_document("v2.0")
    document["data"][0]["paragraphs"][0]["qas"].append({"id": "imp", "question": "Who?", "answers": [],
                                                         "is_impossible": True})  # fmt: skip
    result = _invoke(
        "evaluate", "--model", model_dir, "--data", write_json(tmp_path / "v2.json", document), "--json"
    )
    scores = json.loads(result.stdout)
    assert scores["HasAns_total"] == 5 and scores["NoAns_total"] == 1


def test_split_by_article(tmp_path: Path) -> None:
    source = tmp_path / "all.json.gz"
    source.write_bytes(gzip.compress(json.dumps(squad_document()).encode()))
    train_out, dev_out = tmp_path / "train.json", tmp_path / "dev.json.gz"
    result = _invoke("split", source, "--dev-articles", "1", "--seed", "0", "--train-out", train_out,
                     "--dev-out", dev_out, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["train_articles"] + summary["dev_articles"] == 2
    assert summary["train_questions"] + summary["dev_questions"] == 5
    dev = json.loads(gzip.decompress(dev_out.read_bytes()))
    train = json.loads(train_out.read_text())
    assert {a["title"] for a in dev["data"]} | {a["title"] for a in train["data"]} == {"Insulin", "Care"}
    too_many = _invoke("split", source, "--dev-articles", "2", "--train-out", train_out, "--dev-out", dev_out)
    _assert_one_line_error(too_many, "--dev-articles must be between 1 and 1")


def test_train_json_document(tmp_path: Path, model_dir: Path) -> None:
    data = write_squad_file(tmp_path)
    output = tmp_path / "trained"
    args = ["train", "--data", data, "--output", output, "--base-model", model_dir, "--dev-fraction", "0.34",
            "--epochs", "1", "--batch-size", "4", "--max-seq-length", "48", "--doc-stride", "16",
            "--precision", "fp32", "--json"]  # fmt: skip
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # exactly one JSON document: Trainer's progress went to stderr
    assert "{'loss'" not in result.stderr and "Loading weights" not in result.stderr  # one bar, no dicts
    assert set(document) == {"output", "train_examples", "train_features", "epochs", "best_dev", "seconds"}
    assert document["output"] == str(output) and (output / "model.safetensors").is_file()
    again = _invoke(*args)
    _assert_one_line_error(again, "already exists")


def test_train_bad_options_exit_1(tmp_path: Path) -> None:
    data = write_squad_file(tmp_path)
    bad_precision = _invoke("train", "--data", data, "--output", tmp_path / "o", "--precision", "int4")
    _assert_one_line_error(bad_precision, "precision must be one of")
    missing_model = _invoke("train", "--data", data, "--output", tmp_path / "o", "--base-model", "./nowhere")
    _assert_one_line_error(missing_model, "does not exist")
    for epochs in ("nan", "inf", "-1"):  # refused before any model or data loads
        bad_epochs = _invoke("train", "--data", data, "--output", tmp_path / "o", "--base-model", "./nowhere",
                             "--epochs", epochs)  # fmt: skip
        _assert_one_line_error(bad_epochs, "epochs must be a positive number")
    missing_data = _invoke("train", "--data", tmp_path / "none.json", "--output", tmp_path / "o")
    _assert_one_line_error(missing_data, "no such file")
    assert not (tmp_path / "o").exists()


def test_runs_as_a_module_from_a_bare_checkout_without_our_other_packages(tmp_path: Path) -> None:
    """The GPU machine runs ``PYTHONPATH=. python3 -m finetune.cli`` without pydantic-settings & co."""
    repo = Path(__file__).resolve().parents[1]
    forbidden = ["bot", "retrieval", "pydantic_settings", "rank_bm25", "Stemmer", "telegram"]
    probe = (
        "import sys\n"
        "import finetune.cli, finetune.train, finetune.reader, finetune.commands, finetune.evaluation\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r})))\n"
    )
    env = {"PYTHONPATH": str(repo), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    loaded = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.strip() == "[]"
    help_run = subprocess.run(
        [sys.executable, "-m", "finetune.cli", "--help"], env=env, cwd=repo, capture_output=True, text=True
    )
    assert help_run.returncode == 0 and "train" in help_run.stdout


def test_a_directory_where_a_file_belongs_is_a_one_line_error(tmp_path: Path) -> None:
    _assert_one_line_error(_invoke("check", tmp_path), str(tmp_path), "cannot read it")
    _assert_one_line_error(
        _invoke("predict", "--model", tmp_path, "--question", "Q?", "--context", "x"), "no model in"
    )


@pytest.mark.parametrize("bug", [ValueError("a bug"), OSError("a bug")])
def test_a_bug_keeps_its_traceback_instead_of_passing_as_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bug: Exception
) -> None:
    def broken(*_args, **_kwargs):
        raise bug

    monkeypatch.setattr("finetune.commands.split_articles", broken)
    data = write_squad_file(tmp_path)
    result = _invoke("split", data, "--dev-articles", "1", "--train-out", tmp_path / "t.json",
                     "--dev-out", tmp_path / "d.json")  # fmt: skip
    assert result.exception is bug  # not turned into "error: a bug" and exit 1
    assert "error: a bug" not in result.stderr


def test_bad_values_are_still_one_line_errors(tmp_path: Path, model_dir: Path) -> None:
    data = write_squad_file(tmp_path)
    short = _invoke("check", data, "--max-seq-length", "8")
    _assert_one_line_error(short, "max_seq_length must be at least 16")
    same = _invoke("split", data, "--dev-articles", "1", "--train-out", tmp_path / "x.json",
                   "--dev-out", tmp_path / "x.json")  # fmt: skip
    _assert_one_line_error(same, "are the same file")
    ask = ("predict", "--model", model_dir, "--question", "Q?")
    missing = _invoke(*ask, "--context-file", tmp_path / "nope.txt")
    _assert_one_line_error(missing, str(tmp_path / "nope.txt"))
    bad_device = _invoke(*ask, "--context", "x", "--device", "gpu")
    _assert_one_line_error(bad_device, "'gpu' is not a device")


def test_library_reports_are_typed_and_print_as_the_documented_json(tmp_path: Path) -> None:
    from finetune.commands import CheckReport, SplitReport, check_files, split_file  # noqa: PLC0415

    data = write_squad_file(tmp_path)
    report = check_files([data], str(tmp_path / "no-tokenizer"))
    assert isinstance(report, CheckReport) and report.squad.questions > 0 and report.multi_window is None
    assert json.loads(_invoke("check", data, "--json", "--tokenizer", tmp_path / "no-tokenizer").stdout) == (
        report.to_json()
    )
    split = split_file(write_squad_file(tmp_path, "two.json"), 1, 0, tmp_path / "t.json", tmp_path / "d.json")
    assert isinstance(split, SplitReport)
    assert set(split.to_json()) == {"train_articles", "dev_articles", "train_questions", "dev_questions"}
