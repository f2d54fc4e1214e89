"""The ONNX export cache: built once, tied to the weights, stale or corrupt exports never used as they are."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finetune.cli import app
from finetune.export import (
    META_FILE,
    ExportError,
    check_export,
    ensure_export,
    export_dir,
    weights_sha256,
)
from finetune.reader import Reader
from tests.finetune_fixtures import CONTEXT_INSULIN, make_model_dir

runner = CliRunner()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("export") / "model")


@pytest.fixture
def model_dir(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny model (tests change its weights and exports)."""
    return Path(shutil.copytree(pristine, tmp_path / "model"))


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_the_first_load_builds_the_export_beside_the_model_and_the_second_reuses_it(
    model_dir: Path, backend: str
) -> None:
    built = ensure_export(model_dir, backend)
    assert built.built and built.path == export_dir(model_dir, backend) / "model.onnx"
    assert built.path.parent.parent == model_dir / "onnx"
    meta = json.loads((built.path.parent / META_FILE).read_text())
    assert meta["weights_sha256"] == weights_sha256(model_dir)
    assert meta["quantized"] is (backend == "onnx-int8") and meta["opset"] == 17
    again = ensure_export(model_dir, backend)
    assert not again.built and again.meta == built.meta
    assert not [p for p in built.path.parent.parent.iterdir() if p.name.startswith(".")]  # no temp left


def test_a_truncated_export_is_detected_and_rebuilt_with_a_warning_naming_it(
    model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    export = ensure_export(model_dir, "onnx-int8")
    export.path.write_bytes(export.path.read_bytes()[:1000])
    with pytest.raises(ExportError, match=f"{export.path}: corrupt") as refused:
        check_export(model_dir, "onnx-int8")
    assert "finetune export --model" in str(refused.value)
    with pytest.raises(ExportError, match="corrupt"):
        ensure_export(model_dir, "onnx-int8", rebuild=False)
    with caplog.at_level(logging.WARNING, logger="finetune.export"):
        rebuilt = ensure_export(model_dir, "onnx-int8")
    assert rebuilt.built and str(export.path) in caplog.text and "rebuilding" in caplog.text
    assert check_export(model_dir, "onnx-int8").meta == rebuilt.meta


def test_an_export_of_other_weights_is_stale(model_dir: Path, tmp_path: Path) -> None:
    old = ensure_export(model_dir, "onnx")
    retrained = make_model_dir(tmp_path / "retrained", seed=1)
    shutil.copy(retrained / "model.safetensors", model_dir / "model.safetensors")
    with pytest.raises(ExportError, match="stale: exported from other weights"):
        check_export(model_dir, "onnx")
    new = ensure_export(model_dir, "onnx")
    assert new.built and new.meta.weights_sha256 != old.meta.weights_sha256


def test_broken_metadata_is_refused_with_its_name(model_dir: Path) -> None:
    export = ensure_export(model_dir, "onnx")
    meta = export.path.parent / META_FILE
    meta.write_text("{not json")
    with pytest.raises(ExportError, match=f"{meta}: unreadable export metadata"):
        check_export(model_dir, "onnx")


def test_an_unwritable_export_folder_is_an_error_naming_it(model_dir: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match=f"cannot write the onnx export to {blocker}"):
        ensure_export(model_dir, "onnx", root=blocker)
    with pytest.raises(ExportError, match="HELPLINE_READER_EXPORT_DIR"):
        Reader(model_dir, device="cpu", backend="onnx", export_dir=blocker).warm_up()


def test_the_reader_rebuilds_a_stale_export_instead_of_serving_it(model_dir: Path, tmp_path: Path) -> None:
    Reader(model_dir, device="cpu", backend="onnx").warm_up()
    retrained = make_model_dir(tmp_path / "retrained", seed=1)
    shutil.copy(retrained / "model.safetensors", model_dir / "model.safetensors")
    reader = Reader(model_dir, device="cpu", backend="onnx", precision="fp32")
    reader.warm_up()
    torch_reader = Reader(model_dir, device="cpu", backend="torch", precision="fp32")
    torch_reader.warm_up()
    (a,), (b,) = reader.read("What is insulin?", [CONTEXT_INSULIN]), torch_reader.read(
        "What is insulin?", [CONTEXT_INSULIN]
    )
    assert a.best.score == pytest.approx(b.best.score, abs=1e-3)  # the new weights, not the old export


def test_finetune_export_command_builds_then_checks(model_dir: Path) -> None:
    result = runner.invoke(app, ["export", "--model", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["exports"]
    assert [r["backend"] for r in rows] == ["onnx", "onnx-int8"] and all(r["built"] for r in rows)
    result = runner.invoke(app, ["export", "--model", str(model_dir), "--check", "--json"])
    assert result.exit_code == 0 and not any(r["built"] for r in json.loads(result.stdout)["exports"])
    (export_dir(model_dir, "onnx") / "model.onnx").write_bytes(b"")
    result = runner.invoke(app, ["export", "--model", str(model_dir), "--check"])
    assert result.exit_code == 1 and "corrupt" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["export", "--model", str(model_dir), "--backend", "tensorrt"])
    assert result.exit_code == 1 and "--backend must be one of" in result.stderr
