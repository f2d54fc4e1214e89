"""The Reader on a tiny random BERT: batching, ordering, probabilities, thread safety, fp16 weights."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from finetune import inference, runtime
from finetune.errors import ReaderConfigError
from finetune.models import ModelNotFoundError
from finetune.reader import ModelLoadError, Reader, ReaderNotReadyError
from finetune.reader_config import ReaderConfig
from tests.finetune_fixtures import CONTEXT_A1C, CONTEXT_FOOT, CONTEXT_INSULIN, make_model_dir

CONTEXTS = [CONTEXT_INSULIN, CONTEXT_A1C * 4, CONTEXT_FOOT]  # the second needs several windows at 32 tokens
QUESTION = "What is insulin?"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("reader") / "model")


def _reader(model_dir: Path, **kwargs) -> Reader:
    """The torch backend (tests/test_finetune_runtime.py covers the others)."""
    kwargs.setdefault("backend", "torch")
    reader = Reader(model_dir, device="cpu", max_seq_length=32, doc_stride=8, precision="fp32", **kwargs)
    reader.warm_up()
    return reader


def test_one_reading_per_context_with_spans_inside_it(model_dir: Path) -> None:
    readings = _reader(model_dir).read(QUESTION, CONTEXTS, top_k=3)
    assert len(readings) == len(CONTEXTS)
    for context, reading in zip(CONTEXTS, readings, strict=True):
        assert 1 <= len(reading.spans) <= 3
        scores = [span.score for span in reading.spans]
        assert scores == sorted(scores, reverse=True)
        for span in reading.spans:
            assert span.text == context[span.start : span.end] and span.text
            assert 0.0 < span.probability < 1.0
    assert sum(s.probability for r in readings for s in r.spans) <= 1.0 + 1e-6


def test_batching_does_not_change_results(model_dir: Path) -> None:
    one_at_a_time = _reader(model_dir, batch_size=1).read(QUESTION, CONTEXTS, top_k=2)
    all_at_once = _reader(model_dir, batch_size=64).read(QUESTION, CONTEXTS, top_k=2)
    for a, b in zip(one_at_a_time, all_at_once, strict=True):
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        assert [s.score for s in a.spans] == pytest.approx([s.score for s in b.spans], abs=1e-4)


def test_probabilities_are_comparable_across_contexts(model_dir: Path) -> None:
    reader = _reader(model_dir)
    together = reader.read(QUESTION, CONTEXTS)
    alone = reader.read(QUESTION, [CONTEXTS[0]])
    # the same span, but its probability is shared with the other contexts' candidates
    assert together[0].best.score == pytest.approx(alone[0].best.score, abs=1e-4)
    assert together[0].best.probability < alone[0].best.probability


def test_concurrent_reads_match_serial_reads(model_dir: Path) -> None:
    reader = _reader(model_dir)
    questions = [QUESTION, "What does the A1C test measure?", "How often should feet be checked?"] * 4
    serial = [reader.read(q, CONTEXTS) for q in questions]
    with ThreadPoolExecutor(max_workers=6) as pool:
        parallel = list(pool.map(lambda q: reader.read(q, CONTEXTS), questions))
    for a, b in zip(serial, parallel, strict=True):
        assert [r.best.text for r in a] == [r.best.text for r in b]


def test_float16_weights_load_as_float32_on_cpu(tmp_path: Path) -> None:
    reader = _reader(make_model_dir(tmp_path / "half", dtype="float16"))
    assert next(reader.model.parameters()).dtype == torch.float32
    assert reader.read(QUESTION, [CONTEXT_INSULIN])[0].best is not None


def test_read_before_warm_up_and_bad_arguments(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ReaderNotReadyError):
        Reader(model_dir, device="cpu").read(QUESTION, CONTEXTS)
    reader = _reader(model_dir)
    assert reader.read(QUESTION, []) == []
    with pytest.raises(ValueError, match="top_k must be at least 1"):
        reader.read(QUESTION, CONTEXTS, top_k=0)
    with pytest.raises(ModelNotFoundError, match="no model in"):
        Reader(tmp_path / "missing", device="cpu").warm_up()


def test_warm_up_loads_once(model_dir: Path) -> None:
    reader = _reader(model_dir)
    model = reader.model
    reader.warm_up()
    assert reader.model is model and reader.is_warm


def test_bf16_autocast_is_chosen_only_when_the_cpu_supports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: True)
    assert inference.autocast_dtype(cpu, "auto") == torch.bfloat16
    monkeypatch.setattr(inference, "cpu_supports_bf16", lambda: False)
    assert inference.autocast_dtype(cpu, "auto") is None
    assert inference.autocast_dtype(cpu, "fp32") is None
    with pytest.raises(ValueError, match="precision must be"):
        inference.autocast_dtype(cpu, "int8")


def test_cpu_bf16_detection_reads_cpu_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(runtime, "_CPUINFO", cpuinfo)
    for flags, expected in (
        ("fpu sse avx2", False),
        ("fpu avx512f avx512_bf16", True),
        ("amx_bf16 amx_tile", True),
    ):
        cpuinfo.write_text(f"processor : 0\nflags : {flags}\n")
        inference.cpu_supports_bf16.cache_clear()
        runtime.cpu_flags.cache_clear()
        assert inference.cpu_supports_bf16() is expected
        assert runtime.cpu_has_amx() is flags.startswith("amx")
    inference.cpu_supports_bf16.cache_clear()
    runtime.cpu_flags.cache_clear()


def test_num_threads_is_applied_at_warm_up(model_dir: Path) -> None:
    before = torch.get_num_threads()
    try:
        reader = Reader(model_dir, device="cpu", num_threads=1, backend="torch")
        assert torch.get_num_threads() == before  # __init__ loads and changes nothing
        reader.warm_up()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="num_threads must be at least 1"):
        Reader(model_dir, num_threads=0)


def test_a_question_too_long_for_the_window_is_read_by_its_start_and_counted(model_dir: Path) -> None:
    reader = _reader(model_dir)
    readings = reader.read(("what is insulin " * 70)[:999], CONTEXTS)
    assert len(readings) == len(CONTEXTS) and reader.questions_cut == 1
    reader.read(QUESTION, CONTEXTS)
    assert reader.questions_cut == 1


@pytest.mark.parametrize(
    "weights", [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{}", bytes(range(256)) * 20, "truncated"]
)
def test_garbage_weights_are_a_one_line_model_load_error(model_dir: Path, tmp_path: Path, weights) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    path = broken / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100] if weights == "truncated" else weights)
    with pytest.raises(ModelLoadError, match=f"model files in {broken} are broken") as caught:
        Reader(broken, device="cpu").warm_up()
    assert "\n" not in str(caught.value)


def test_the_reader_reads_with_the_model_directorys_window_settings(model_dir: Path, tmp_path: Path) -> None:
    trained = tmp_path / "trained-at-48"
    shutil.copytree(model_dir, trained)
    ReaderConfig(max_seq_length=48, doc_stride=16, max_answer_length=5).save(trained)
    reader = Reader(trained, device="cpu")
    assert (reader.windows.max_seq_length, reader.windows.doc_stride) == (48, 16)
    assert reader.decode.max_answer_length == 5
    # an explicit argument still wins over the file
    assert Reader(trained, device="cpu", max_answer_length=7).decode.max_answer_length == 7


def test_a_bad_reader_config_names_the_file(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "reader_config.json").write_text('{"max_seq_length": 48, "stride": 16}')
    with pytest.raises(ReaderConfigError, match="reader_config.json: unknown keys"):
        Reader(broken, device="cpu")
