"""The `retrieval` command line (through typer's CliRunner) and the package's import boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrieval import __version__
from retrieval.cli import app
from retrieval.manifest import FORMAT_VERSION
from tests.retrieval_fixtures import INDEXED, SKIPPED, write_corpus

runner = CliRunner()


@pytest.fixture()
def index_dir(tmp_path: Path) -> Path:
    docs = write_corpus(tmp_path / "docs")
    # BM25 only: these tests are about the CLI, not the encoder (tests/test_retrieval_dense.py is).
    result = runner.invoke(
        app, ["index", str(docs), "--index", str(tmp_path / "index"), "--no-dense", "--json"]
    )
    assert result.exit_code == 0, result.output
    return tmp_path / "index"


def test_import_loads_neither_torch_nor_telegram() -> None:
    code = (
        "import sys, retrieval, retrieval.cli\n"
        "bad = [m for m in ('torch', 'transformers', 'telegram', 'bot', 'finetune') if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_index_json_is_one_document(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    result = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "ix"), "--no-dense", "--json"])
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["documents"] == len(INDEXED) and report["passages"] > 0 and report["seconds"] >= 0
    assert {s["path"] for s in report["skipped"]} == set(SKIPPED)
    assert all(s["reason"] for s in report["skipped"])


def test_search_json_has_the_contract_fields(index_dir: Path) -> None:
    result = runner.invoke(
        app, ["search", "insulin pump", "--index", str(index_dir), "--top-k", "2", "--json"]
    )
    assert result.exit_code == 0
    hits = json.loads(result.stdout)
    assert 1 <= len(hits) <= 2
    assert set(hits[0]) == {"passage_id", "score", "bm25", "dense", "title", "source", "text"}
    assert hits[0]["title"] == "Insulin pumps"


def test_search_human_output_and_no_match(index_dir: Path) -> None:
    result = runner.invoke(app, ["search", "insulin pump", "--index", str(index_dir)])
    assert result.exit_code == 0 and "1. [" in result.stdout and "Insulin pumps" in result.stdout
    result = runner.invoke(app, ["search", "zebra crossing", "--index", str(index_dir)])
    assert result.exit_code == 0 and "no passage matches" in result.stdout


def test_missing_queries_file_is_a_one_line_error(index_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "--queries", str(tmp_path / "q.txt"), "--index", str(index_dir)])
    assert result.exit_code == 1 and "q.txt" in result.stderr


def test_search_queries_file_gives_one_array_a_line(index_dir: Path, tmp_path: Path) -> None:
    queries = tmp_path / "q.txt"
    queries.write_text("insulin pump\n\nketones high\nzebra\n", encoding="utf-8")
    result = runner.invoke(app, ["search", "--queries", str(queries), "--index", str(index_dir), "-k", "1"])
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and lines[1] == [] and lines[3] == []
    assert lines[0][0]["title"] == "Insulin pumps" and lines[2][0]["title"] == "dka"


def test_stats(index_dir: Path) -> None:
    result = runner.invoke(app, ["stats", "--index", str(index_dir), "--json"])
    assert result.exit_code == 0
    stats = json.loads(result.stdout)
    assert stats["documents"] == len(INDEXED) and stats["skipped"] == len(SKIPPED)
    assert stats["passages"] > 0 and stats["vocabulary"] > 0 and stats["settings"]["variant"] == "okapi"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x", "--index", "{tmp}/missing"], "no index at"),
        (["stats", "--index", "{tmp}/missing"], "run: retrieval index DOCS --index"),
        (["search", "--index", "{tmp}/missing"], "either a QUERY or --queries"),
        (["index", "{tmp}/no-docs", "--index", "{tmp}/ix"], "no-docs does not exist"),
        (["index", "{tmp}", "--index", "{tmp}/ix", "--synonyms", "{tmp}/syn.txt"], "syn.txt"),
        (["index", "{tmp}", "--index", "{tmp}/ix", "--max-words", "5"], "max_words (5) must be >="),
        (["index", "{tmp}", "--index", "{tmp}/ix", "--variant", "bm99"], "variant must be one of"),
        (["index", "{docs}", "--index", "{tmp}/a-file/sub"], "{tmp}/a-file is a file, not a folder"),
        (["index", "{docs}", "--index", "/proc/helpline-x"], "cannot create the index /proc/helpline-x"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    write_corpus(tmp_path / "docs")
    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    args = [a.replace("{docs}", str(tmp_path / "docs")) for a in args]
    message = message.replace("{tmp}", str(tmp_path))
    result = runner.invoke(app, [a.replace("{tmp}", str(tmp_path)) for a in args])
    assert result.exit_code == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_version_and_help() -> None:
    assert runner.invoke(app, ["--version"]).stdout.strip() == f"retrieval {__version__}"
    for command in ("index", "search", "stats"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_file_names_in_the_human_output_are_quoted(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    (docs / "x.exe\nskipped pumps.md: forged").write_bytes(b"MZ")
    result = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "ix"), "--no-dense"])
    assert result.exit_code == 0
    assert "skipped 'x.exe\\nskipped pumps.md: forged': unsupported" in result.stdout
    assert not any(line.startswith("skipped pumps.md") for line in result.stdout.splitlines())


def test_an_index_of_another_version_is_named_when_replaced(index_dir: Path, tmp_path: Path) -> None:
    manifest = index_dir / "manifest.json"
    current = f'"format_version": {FORMAT_VERSION}'
    manifest.write_text(manifest.read_text().replace(current, '"format_version": 7'))
    docs = tmp_path / "docs"
    result = runner.invoke(app, ["index", str(docs), "--index", str(index_dir), "--no-dense"])
    assert result.exit_code == 0
    (line,) = [line for line in result.stdout.splitlines() if "kept at" in line]
    kept = Path(line.rsplit("kept at ", 1)[1])
    assert json.loads((kept / "manifest.json").read_text())["format_version"] == 7


def test_a_bug_keeps_its_traceback_instead_of_passing_as_a_user_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bug = ValueError("a bug")

    def broken(*_args, **_kwargs):
        raise bug

    monkeypatch.setattr("retrieval.cli.build_index", broken)
    docs = write_corpus(tmp_path / "docs")
    result = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "ix")])
    assert result.exception is bug
    assert "error: a bug" not in result.stderr


def test_bad_settings_are_still_one_line_errors(tmp_path: Path) -> None:
    docs = write_corpus(tmp_path / "docs")
    result = runner.invoke(app, ["index", str(docs), "--index", str(tmp_path / "ix"), "--target-words", "0"])
    assert result.exit_code == 1 and "target_words must be at least 1" in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
