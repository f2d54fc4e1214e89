"""Reader backends on the tiny test model: batching plan, backend choice, every backend reads alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from finetune import runtime
from finetune.errors import ConfigError
from finetune.reader import Reader
from finetune.runtime import Batch, plan_batches, resolve_backend, run_windows
from tests.finetune_fixtures import CONTEXT_A1C, CONTEXT_FOOT, CONTEXT_INSULIN, make_model_dir

CONTEXTS = [CONTEXT_INSULIN, CONTEXT_A1C * 4, CONTEXT_FOOT]  # the second needs several windows at 32 tokens
QUESTION = "What is insulin?"
ONNX_BACKENDS = ["onnx", "onnx-int8"]
EXPORT_BACKENDS = [*ONNX_BACKENDS, "openvino"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("runtime") / "model")


def _reader(model_dir: Path, backend: str, **kwargs) -> Reader:
    reader = Reader(
        model_dir, device="cpu", max_seq_length=32, doc_stride=8, precision="fp32", backend=backend, **kwargs
    )
    reader.warm_up()
    return reader


# --- batching ------------------------------------------------------------------------------------


def test_batches_cover_every_window_once_longest_first_and_respect_the_size() -> None:
    lengths = [5, 40, 38, 12, 40, 39, 11, 6]
    batches = plan_batches(lengths, batch_size=2, max_padding_share=1.0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 2 for b in batches)
    firsts = [lengths[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)


def test_a_batch_is_cut_where_padding_would_cost_more_than_the_share() -> None:
    lengths = [100, 98, 97, 30, 29, 10]
    assert plan_batches(lengths, batch_size=32, max_padding_share=1.0) == [[0, 1, 2, 3, 4, 5]]
    assert plan_batches(lengths, batch_size=32, max_padding_share=0.15) == [[0, 1, 2], [3, 4], [5]]


def test_bad_batch_size_is_named() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1, got 0"):
        plan_batches([3], batch_size=0)


class _EchoRuntime:
    """Logits that encode each token's id, so a misplaced row or column shows."""

    name = "echo"

    def __init__(self, length_multiple: int = 1) -> None:
        self.shapes: list[tuple[int, int]] = []
        self.length_multiple = length_multiple

    def logits(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        self.shapes.append(batch.input_ids.shape)
        ids = batch.input_ids.astype(np.float32)
        return ids, -ids


def test_run_windows_returns_each_windows_own_logits_in_order(model_dir: Path) -> None:
    reader = _reader(model_dir, "torch")
    from finetune.features import prepare_eval_features  # noqa: PLC0415

    windows = prepare_eval_features(reader.tokenizer, [QUESTION] * 3, CONTEXTS, reader.windows)
    echo = _EchoRuntime()
    logits = run_windows(echo, windows, batch_size=3, pad_id=0)
    for window, got in zip(windows, logits, strict=True):
        assert np.array_equal(got.start_logits, window.input_ids.astype(np.float32))
        assert np.array_equal(got.end_logits, -window.input_ids.astype(np.float32))
    assert all(rows <= 3 for rows, _ in echo.shapes)


def test_a_runtime_that_wants_aligned_lengths_gets_them_and_the_padding_is_cut_off(model_dir: Path) -> None:
    reader = _reader(model_dir, "torch")
    from finetune.features import prepare_eval_features  # noqa: PLC0415

    windows = prepare_eval_features(reader.tokenizer, [QUESTION] * 3, CONTEXTS, reader.windows)
    echo = _EchoRuntime(length_multiple=16)
    logits = run_windows(echo, windows, batch_size=3, pad_id=0)
    assert all(length % 16 == 0 for _, length in echo.shapes)
    assert any(length > len(w.input_ids) for w in windows for _, length in echo.shapes)  # padding was added
    for window, got in zip(windows, logits, strict=True):
        assert np.array_equal(got.start_logits, window.input_ids.astype(np.float32))
    assert runtime.padded_length(17, 16) == 32 and runtime.padded_length(32, 16) == 32
    assert runtime.padded_length(5) == 5


def test_a_runtime_can_ask_for_uncut_batches(model_dir: Path) -> None:
    reader = Reader(model_dir, device="cpu", max_seq_length=128, doc_stride=32, backend="torch")
    reader.warm_up()
    from finetune.features import prepare_eval_features  # noqa: PLC0415

    windows = prepare_eval_features(reader.tokenizer, [QUESTION] * 3, CONTEXTS, reader.windows)
    cut, uncut = _EchoRuntime(), _EchoRuntime()
    uncut.max_padding_share = 1.0
    run_windows(cut, windows, batch_size=32, pad_id=0)
    logits = run_windows(uncut, windows, batch_size=32, pad_id=0)
    assert len(cut.shapes) > 1 and len(uncut.shapes) == 1  # the default cuts where padding would cost
    for window, got in zip(windows, logits, strict=True):
        assert np.array_equal(got.start_logits, window.input_ids.astype(np.float32))


# --- backend choice ------------------------------------------------------------------------------


def test_auto_serves_openvino_with_amx_int8_onnx_without_and_torch_without_either_or_on_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: True)
    assert resolve_backend("auto", "cpu").name == runtime.AUTO_AMX_BACKEND == "openvino"
    assert resolve_backend("auto", "cuda").name == "torch"
    monkeypatch.setattr(runtime, "cpu_has_amx", lambda: False)
    assert resolve_backend("auto", "cpu").name == runtime.AUTO_CPU_BACKEND == "onnx-int8"
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    assert resolve_backend("auto", "cpu").name == "openvino"
    with pytest.raises(ConfigError, match="onnx-int8 needs onnxruntime"):
        resolve_backend("onnx-int8", "cpu")
    monkeypatch.setattr(runtime, "openvino_available", lambda: False)
    choice = resolve_backend("auto", "cpu")
    assert choice.name == "torch" and "neither onnxruntime nor openvino is installed" in choice.reason
    with pytest.raises(ConfigError, match="openvino needs openvino: pip install openvino"):
        resolve_backend("openvino", "cpu")


def test_bad_backend_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="got 'tensorrt'"):
        resolve_backend("tensorrt", "cpu")
    with pytest.raises(ConfigError, match="CPU only, not on cuda"):
        resolve_backend("onnx", "cuda")
    with pytest.raises(ConfigError, match="CPU only, not on cuda"):
        resolve_backend("openvino", "cuda")


# --- every backend on the tiny model -------------------------------------------------------------


@pytest.mark.parametrize("backend", ["torch", *EXPORT_BACKENDS])
def test_every_backend_reads_spans_inside_each_context(model_dir: Path, tmp_path: Path, backend: str) -> None:
    reader = _reader(model_dir, backend, export_dir=tmp_path / "exports")
    assert reader.backend == backend and reader.is_warm
    readings = reader.read(QUESTION, CONTEXTS, top_k=3)
    assert len(readings) == len(CONTEXTS)
    for context, reading in zip(CONTEXTS, readings, strict=True):
        assert reading.spans
        for span in reading.spans:
            assert span.text == context[span.start : span.end] and 0.0 < span.probability < 1.0


def test_fp32_onnx_gives_torchs_answers_and_scores(model_dir: Path, tmp_path: Path) -> None:
    torch_readings = _reader(model_dir, "torch").read(QUESTION, CONTEXTS, top_k=3)
    onnx_reader = _reader(model_dir, "onnx", export_dir=tmp_path / "exports")
    onnx_readings = onnx_reader.read(QUESTION, CONTEXTS, top_k=3)
    for a, b in zip(torch_readings, onnx_readings, strict=True):
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        assert [s.score for s in a.spans] == pytest.approx([s.score for s in b.spans], abs=1e-3)
        assert a.no_answer_score == pytest.approx(b.no_answer_score, abs=1e-3)


def test_int8_logits_stay_close_to_torchs(model_dir: Path, tmp_path: Path) -> None:
    torch_reader = _reader(model_dir, "torch")
    int8 = _reader(model_dir, "onnx-int8", export_dir=tmp_path / "exports")
    from finetune.features import prepare_eval_features  # noqa: PLC0415

    windows = prepare_eval_features(torch_reader.tokenizer, [QUESTION] * 3, CONTEXTS, torch_reader.windows)
    reference, quantized = torch_reader.forward(windows), int8.forward(windows)
    for a, b in zip(reference, quantized, strict=True):
        scale = float(np.abs(a.start_logits).max()) + 1e-6
        assert float(np.abs(a.start_logits - b.start_logits).max()) < 0.25 * scale


@pytest.mark.parametrize("exact_rereads", [True, False])
def test_an_int8_reader_reads_exactly_on_its_fp32_export(
    model_dir: Path, tmp_path: Path, exact_rereads: bool
) -> None:
    """``read(exact=True)`` on int8 gives the fp32 export's readings (loaded at warm-up when asked for,
    else on first use); a plain read stays int8's, and the other backends are not approximate."""
    exports = tmp_path / "exports"
    fp32 = _reader(model_dir, "onnx", export_dir=exports)
    int8 = _reader(model_dir, "onnx-int8", export_dir=exports, exact_rereads=exact_rereads)
    assert int8.approximate and not fp32.approximate and not _reader(model_dir, "torch").approximate
    assert (int8._exact_runtime is not None) == exact_rereads  # loaded with the model, not on a member's time
    reference = fp32.read(QUESTION, CONTEXTS, top_k=2)
    exact = int8.read(QUESTION, CONTEXTS, top_k=2, exact=True)
    plain = int8.read(QUESTION, CONTEXTS, top_k=2)
    for a, b in zip(reference, exact, strict=True):
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        assert [s.score for s in a.spans] == pytest.approx([s.score for s in b.spans], abs=1e-4)
    assert [s.score for r in plain for s in r.spans] != pytest.approx(
        [s.score for r in reference for s in r.spans], abs=1e-4
    )  # int8's own reading is another one: the exact one really came from the fp32 export
    assert fp32.read(QUESTION, CONTEXTS, top_k=2, exact=True) == fp32.read(QUESTION, CONTEXTS, top_k=2)


def test_openvino_reads_the_fp32_export_and_rereads_it_exactly_in_f32(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OpenVINO compiles onnxruntime's fp32 export (one export, one hash check); in f32 its readings are
    the fp32 export's; it is approximate only where it runs bf16, and then re-reads exactly in f32."""
    exports = tmp_path / "exports"
    reference = _reader(model_dir, "onnx", export_dir=exports).read(QUESTION, CONTEXTS, top_k=2)
    from finetune import reader as reader_module  # noqa: PLC0415

    monkeypatch.setattr(reader_module, "openvino_precision", lambda: "bf16")  # as on an AMX CPU
    openvino = _reader(model_dir, "openvino", export_dir=exports, exact_rereads=True)
    assert openvino.approximate and openvino._exact_runtime is not None
    assert openvino._exact_runtime.precision == "f32" and openvino._exact_runtime.length_multiple == 1
    assert sorted(p.name for p in exports.iterdir()) == ["fp32"]  # no export of its own
    exact = openvino.read(QUESTION, CONTEXTS, top_k=2, exact=True)
    for a, b in zip(reference, exact, strict=True):
        assert [(s.start, s.end) for s in a.spans] == [(s.start, s.end) for s in b.spans]
        assert [s.score for s in a.spans] == pytest.approx([s.score for s in b.spans], abs=1e-3)
    monkeypatch.setattr(reader_module, "openvino_precision", lambda: "f32")  # a CPU without bf16
    assert not _reader(model_dir, "openvino", export_dir=exports).approximate


def test_warm_up_runs_a_first_pass_through_every_runtime_it_loads(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The runtimes' one-time set-up happens at start-up, not on a member's first question."""
    from finetune import reader as reader_module  # noqa: PLC0415

    passed: list[str] = []
    real = reader_module.first_pass
    def recorded(fresh: runtime.Runtime, pad_id: int = 0) -> None:
        passed.append(fresh.name)
        real(fresh, pad_id)

    monkeypatch.setattr(reader_module, "first_pass", recorded)
    _reader(model_dir, "onnx-int8", export_dir=tmp_path / "exports", exact_rereads=True)
    assert passed == ["onnx-int8", "onnx"]  # the int8 session and the fp32 one of its exact re-reads
    passed.clear()
    _reader(model_dir, "torch")
    assert passed == ["torch"]


def test_openvino_precision_sets_the_length_alignment(model_dir: Path, tmp_path: Path) -> None:
    reader = _reader(model_dir, "openvino", export_dir=tmp_path / "exports")
    bf16 = reader._runtime.precision != "f32"
    assert reader._runtime.approximate is bf16
    assert reader._runtime.length_multiple == (runtime.OPENVINO_BF16_LENGTH_MULTIPLE if bf16 else 1)
    assert reader._runtime.max_padding_share == runtime.OPENVINO_MAX_PADDING_SHARE


def test_openvino_rebuilds_a_truncated_export_instead_of_using_it(model_dir: Path, tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    _reader(model_dir, "onnx", export_dir=exports)
    onnx_file = exports / "fp32" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:1000])
    reader = _reader(model_dir, "openvino", export_dir=exports)
    assert reader.read(QUESTION, CONTEXTS, top_k=1)[0].spans
    assert onnx_file.stat().st_size > 1000  # rebuilt, not compiled truncated


@pytest.mark.parametrize("backend", EXPORT_BACKENDS)
def test_batching_does_not_change_onnx_results(model_dir: Path, tmp_path: Path, backend: str) -> None:
    exports = tmp_path / "exports"
    one = _reader(model_dir, backend, export_dir=exports, batch_size=1).read(QUESTION, CONTEXTS, top_k=2)
    many = _reader(model_dir, backend, export_dir=exports, batch_size=64).read(QUESTION, CONTEXTS, top_k=2)
    # int8: activation scales are per batch; bf16 (OpenVINO on AMX): rounding differs with the padded shape.
    tolerance = 0.5 if backend == "onnx-int8" else 0.05 if backend == "openvino" else 1e-4
    for a, b in zip(one, many, strict=True):
        assert [s.score for s in a.spans] == pytest.approx([s.score for s in b.spans], abs=tolerance)


def test_onnx_threads_and_no_torch_model(model_dir: Path, tmp_path: Path) -> None:
    reader = _reader(model_dir, "onnx", export_dir=tmp_path / "exports", num_threads=1)
    with pytest.raises(Exception, match="onnx backend"):
        reader.model  # noqa: B018 - the torch model is never loaded on an ONNX backend


def test_only_the_readers_threads_spin_between_ops(model_dir: Path, tmp_path: Path) -> None:
    """The measured choice (finetune/runtime.py, retrieval/encoder.py): only the reader's pool spins."""
    from transformers import AutoModel  # noqa: PLC0415

    from retrieval.encoder import _onnx_session  # noqa: PLC0415 - the encoder's session builder

    reader = _reader(model_dir, "onnx", export_dir=tmp_path / "exports", num_threads=2)
    spinning = "session.intra_op.allow_spinning"
    assert reader._runtime.session.get_session_options().get_session_config_entry(spinning) == "1"
    encoder_session = _onnx_session(AutoModel.from_pretrained(model_dir).eval(), threads=2)
    assert encoder_session.get_session_options().get_session_config_entry(spinning) == "0"
