"""Reader runtimes: what turns a batch of windows into start/end logits, and how windows are batched.

Every backend returns numpy logits, so the one numpy decoder (``finetune.postprocess``) reads them
all. The backends:

- ``torch``: the model in torch (bf16 autocast on CPUs and GPUs that have it, else fp32);
- ``onnx``: the same weights exported to ONNX (``finetune.export``), run by ONNX Runtime with every
  graph optimisation (attention, layer-norm and GELU fusions) in fp32;
- ``onnx-int8``: that export with int8 dynamic quantisation of its matrix multiplications;
- ``openvino``: the fp32 export compiled by OpenVINO, which runs it in bf16 on CPUs with AMX (its
  default there; f32 elsewhere);
- ``auto`` (the default): on a CPU, ``openvino`` where the CPU has AMX and openvino is installed, else
  ``onnx-int8`` when onnxruntime is installed, else torch (always torch on CUDA, where the torch path
  already runs in bf16/fp16 on tensor cores). See ``auto_cpu_backend``.

This module imports neither torch, onnxruntime nor openvino at import time; the torch runtime lives in
``finetune.inference``.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from finetune.errors import ConfigError
from finetune.features import Window
from finetune.postprocess import WindowLogits

logger = logging.getLogger(__name__)

TORCH = "torch"
ONNX = "onnx"
ONNX_INT8 = "onnx-int8"
OPENVINO = "openvino"
AUTO = "auto"
BACKENDS = (AUTO, TORCH, ONNX, ONNX_INT8, OPENVINO)
ONNX_BACKENDS = (ONNX, ONNX_INT8)
# What ``auto`` serves on a CPU, chosen by measurement on the shipped (stage-5) reader, 2-core AVX2 CPU
# without bf16 or VNNI (README, "Benchmarks"). bench/bench_answer_latency.py (k=8, 100 dev questions,
# interleaved, two threads, load 1.5): p50 int8 267 ms, fp32 ONNX 354 ms, torch 436 ms (0.61x /
# 0.81x); the engine's answer (or decline) was torch's for 94 / 100 questions with int8, 100 / 100
# with fp32 ONNX; diabetes dev EM/F1 (reader alone, gold passages) int8 -1.15 / -0.97 against torch,
# fp32 ONNX identical. int8 is the default because members wait 40% less; HELPLINE_READER_BACKEND=onnx
# keeps torch's answers exactly at 0.81x. What did not close the gap (one-off variants of the export,
# 150 dev questions, engine answer vs torch): reduce_range 93%, uint8 weights 91%, onnxruntime's
# offline BERT fusion before quantising 93-95%. SmoothQuant-style scaling of the outlier channels
# (up to 15x the median going into the FFN): alpha 0.5 kept 69% of the passages' best spans against
# plain int8's 81%, alpha 0.75 86% but no more questions' best spans (78% vs 76%). bench/probe_int8.py
# shows every part of the model flips spans when quantised: without VNNI the int8 kernels are not
# fast enough to keep any part in fp32 and still halve torch's time. Re-measured on a 2-core AMD EPYC
# with AVX-512 VNNI and BF16 (same bench, load 1.6): int8 146 ms, torch 235 ms (bf16 autocast, which
# this CPU has), fp32 ONNX 282 ms: 0.62x, same answer 96/100. VNNI speeds int8 up, but bf16 speeds torch
# up as much, so the ratio barely moves; the offline BERT fusion before quantising was 4% slower here
# (reading the 8 passages of 60 dev questions: 145 vs 139 ms a question). Also tried there, reading the
# 8 passages of 60 dev questions: static int8 (QLinearMatMul, activation ranges calibrated on 64 train
# questions) 217 ms a question against dynamic int8's 154 ms; fused Attention with QAttention 173 against
# 178 ms in the same run (noise); quantising the attention's two activation products too 3% faster, same
# flips. Where int8's rounding flips the engine's decision, the engine re-reads the close calls on the
# fp32 export instead (bot.fusion.needs_recheck, HELPLINE_RECHECK_MARGIN).
AUTO_CPU_BACKEND = ONNX_INT8
# What ``auto`` serves on a CPU with AMX (Intel Xeon, 2 cores), measured with the stage-6 reader, 150 dev
# questions, k=5, AnswerEngine.answer in one process per backend (README "Benchmarks" has the bench runs):
# engine p50 OpenVINO bf16 44 ms, ONNX int8 75 ms, torch bf16 autocast 93 ms; the same answer as torch for
# 150/150 with OpenVINO, 147/150 with int8. AMX makes torch's bf16 about as fast as int8 on onnxruntime,
# whose int8 kernels gain less from it; OpenVINO's bf16 kernels use the AMX tiles for every matrix product.
AUTO_AMX_BACKEND = OPENVINO
# OpenVINO in bf16 pads each batch's length to a multiple of this: AMX tiles take 16 rows of bf16 at a time.
# Measured on the AMX CPU (60 random batches of 3-6 windows of 150-256 tokens): 37.5 ms a batch unpadded,
# 27.7 ms padded to 16 (4% more tokens), 26.8 at 32, 29.1 at 64. ONNX int8 gained nothing from it (43 ms).
OPENVINO_BF16_LENGTH_MULTIPLE = 16
# OpenVINO reads a question's windows in one batch, padded to the longest: on AMX a call costs more than
# the padding. Engine p50 over 100 dev questions, k=5: 49.5 / 48.6 ms with batches cut at 15% padding,
# 47.5 at 30%, 47.0 at 50%, 46.3 / 46.1 uncut.
OPENVINO_MAX_PADDING_SHARE = 1.0
_CPUINFO = Path("/proc/cpuinfo")

# A batch is cut where padding its windows to the batch's longest would waste more than this share of
# the batch's tokens: windows come sorted longest first, so a cut costs one more call (~1 ms) and saves
# the padded tokens' share of the compute (attention grows faster than linearly with length).
MAX_PADDING_SHARE = 0.15


@dataclass(frozen=True)
class Batch:
    """Right-padded model inputs of some windows (int64, as the exported graph takes them)."""

    input_ids: np.ndarray
    token_type_ids: np.ndarray
    attention_mask: np.ndarray

    def feeds(self, names: Collection[str]) -> dict[str, np.ndarray]:
        """The inputs an exported graph takes, by name (a graph without ``token_type_ids`` has none)."""
        inputs = {
            "input_ids": self.input_ids,
            "token_type_ids": self.token_type_ids,
            "attention_mask": self.attention_mask,
        }
        return {name: array for name, array in inputs.items() if name in names}


class Runtime(Protocol):
    """A backend: a name and start/end logits, (batch, length) float32 each, for a padded batch.

    A runtime may also say how it wants its batches (``run_windows`` reads them, with defaults):
    ``length_multiple`` (pad each batch's length up to a multiple of it; default 1) and
    ``max_padding_share`` (see ``plan_batches``; default ``MAX_PADDING_SHARE``).
    """

    name: str

    def logits(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]: ...


def onnxruntime_available() -> bool:
    """True when the onnxruntime package can be imported (found without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def openvino_available() -> bool:
    """True when the openvino package can be imported (found without importing it)."""
    return importlib.util.find_spec("openvino") is not None


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as the Linux kernel reports them (empty elsewhere)."""
    try:
        return frozenset(_CPUINFO.read_text(errors="replace").split())
    except OSError:
        return frozenset()


def cpu_has_amx() -> bool:
    """True when this CPU has AMX bf16 tiles (Intel Sapphire Rapids and later)."""
    return "amx_bf16" in cpu_flags()


def auto_cpu_backend() -> BackendChoice:
    """What ``auto`` serves on this CPU, with the reason (see ``AUTO_AMX_BACKEND``, ``AUTO_CPU_BACKEND``)."""
    if cpu_has_amx() and openvino_available():
        return BackendChoice(AUTO_AMX_BACKEND, "auto on a cpu with AMX: the fastest measured")
    if onnxruntime_available():
        return BackendChoice(AUTO_CPU_BACKEND, "auto on cpu: the fastest measured")
    if openvino_available():
        return BackendChoice(OPENVINO, "auto on cpu: onnxruntime is not installed")
    return BackendChoice(TORCH, "auto: neither onnxruntime nor openvino is installed (pip install openvino)")


@dataclass(frozen=True)
class BackendChoice:
    """The backend a setting resolves to on a device, and why (for the start-up log)."""

    name: str
    reason: str


def resolve_backend(requested: str, device_type: str) -> BackendChoice:
    """The backend to serve for a setting on a device.

    Args:
        requested: one of ``BACKENDS``.
        device_type: ``cpu`` or ``cuda`` (torch's device type).

    Returns:
        The backend and the reason it was chosen.

    Raises:
        ConfigError: an unknown backend, an ONNX backend on CUDA, or one without onnxruntime.
    """
    if requested not in BACKENDS:
        raise ConfigError(f"reader backend must be one of {', '.join(BACKENDS)}, got {requested!r}")
    if requested == TORCH:
        return BackendChoice(TORCH, "requested")
    if requested == AUTO:
        if device_type != "cpu":
            return BackendChoice(TORCH, f"auto on {device_type}: torch (bf16/fp16 autocast)")
        return auto_cpu_backend()
    if device_type != "cpu":
        raise ConfigError(f"reader backend {requested} runs on the CPU only, not on {device_type}")
    if requested == OPENVINO:
        if not openvino_available():
            raise ConfigError("reader backend openvino needs openvino: pip install openvino")
    elif not onnxruntime_available():
        raise ConfigError(f"reader backend {requested} needs onnxruntime: pip install onnxruntime")
    return BackendChoice(requested, "requested")


class OnnxRuntime:
    """An exported QA model run by ONNX Runtime on the CPU.

    Args:
        path: the ``model.onnx`` file.
        name: the backend's name (``onnx`` or ``onnx-int8``).
        threads: intra-op threads (None or 0: one per core, onnxruntime's default).
    """

    def __init__(self, path: Path, name: str, threads: int | None = None):
        import onnxruntime as ort  # noqa: PLC0415 - optional and heavy: only the ONNX backends need it

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1  # one graph path at a time: parallelism is inside the ops
        # Worker threads spin between the ~100 ops of one forward pass instead of sleeping and being
        # woken for each (onnxruntime's default; torch's OpenMP threads do the same). Measured on the
        # 2-core machine, two threads, run_windows alone over the 8 retrieved passages of 40 dev
        # questions: int8 202 ms per question with spinning vs 254 ms without, torch 365-377 ms. Between
        # questions the threads sleep after a short spin (an idle session used 50 ms of CPU in 3 s).
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.name = name
        self._inputs = {i.name for i in self.session.get_inputs()}

    def logits(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        start, end = self.session.run(["start_logits", "end_logits"], batch.feeds(self._inputs))
        return np.asarray(start, dtype=np.float32), np.asarray(end, dtype=np.float32)


class OpenVinoRuntime:
    """The fp32 ONNX export compiled by OpenVINO for the CPU.

    Args:
        path: the fp32 ``model.onnx`` file.
        threads: inference threads (None or 0: OpenVINO's default, one per core).
        exact: compile in f32 even where OpenVINO would run bf16 (the exact re-reads).
    """

    name = OPENVINO

    def __init__(self, path: Path, threads: int | None = None, *, exact: bool = False):
        import openvino as ov  # noqa: PLC0415 - optional and heavy: only this backend needs it

        # LATENCY: one request at a time uses all the threads (the reader serialises its passes).
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if exact:
            config["INFERENCE_PRECISION_HINT"] = "f32"
        self._compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # bf16, f32
        self.approximate = self.precision != "f32"
        self.length_multiple = OPENVINO_BF16_LENGTH_MULTIPLE if self.approximate else 1
        self.max_padding_share = OPENVINO_MAX_PADDING_SHARE
        self._request = self._compiled.create_infer_request()
        self._inputs = {port.get_any_name() for port in self._compiled.inputs}

    def logits(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        outputs = self._request.infer(batch.feeds(self._inputs))
        # Copies: the request reuses its output buffers on the next call.
        return (np.array(outputs["start_logits"], dtype=np.float32),
                np.array(outputs["end_logits"], dtype=np.float32))  # fmt: skip


@cache
def openvino_precision() -> str:
    """The precision OpenVINO runs f32 models in on this CPU by default (``bf16`` with AMX, else ``f32``)."""
    import openvino as ov  # noqa: PLC0415

    return ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()


def first_pass(runtime: Runtime, pad_id: int = 0) -> None:
    """One tiny batch through a fresh runtime, so that its one-time set-up (memory pools, kernels) runs
    at start-up instead of on the first member's question. Measured on the AMX Xeon, OpenVINO: the
    first question took 120 ms (reading 80) without it, 57 ms with it; the pass itself 91 ms at start-up
    (with the f32 re-read runtime and the query encoder's)."""
    ids = np.full((1, 16), pad_id, dtype=np.int64)
    runtime.logits(Batch(ids, np.zeros_like(ids), np.ones_like(ids)))


def plan_batches(
    lengths: Sequence[int], batch_size: int, max_padding_share: float = MAX_PADDING_SHARE
) -> list[list[int]]:
    """Group window indices into batches of similar length.

    Windows are taken longest first; a batch closes at ``batch_size`` windows, or before a window whose
    padding to the batch's longest would bring the batch's padded share above ``max_padding_share``.

    Args:
        lengths: tokens per window.
        batch_size: the most windows per batch.
        max_padding_share: the largest share of a batch's tokens that may be padding.

    Returns:
        Lists of indices into ``lengths``, longest batch first.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = np.argsort([-n for n in lengths], kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in order.tolist():
        if current:
            longest = lengths[current[0]]
            padded = longest * (len(current) + 1)
            wasted = 1.0 - (real + lengths[index]) / padded
            if len(current) == batch_size or wasted > max_padding_share:
                batches.append(current)
                current, real = [], 0
        current.append(index)
        real += lengths[index]
    if current:
        batches.append(current)
    return batches


def padded_length(length: int, multiple: int = 1) -> int:
    """``length`` rounded up to a multiple of ``multiple``."""
    return -(-length // multiple) * multiple


def pad_batch(windows: Sequence[Window], pad_id: int, multiple: int = 1) -> Batch:
    """Right-pad windows to the longest of them, rounded up to a multiple of ``multiple`` tokens."""
    longest = padded_length(max(len(w.input_ids) for w in windows), multiple)
    ids = np.full((len(windows), longest), pad_id, dtype=np.int64)
    types = np.zeros((len(windows), longest), dtype=np.int64)
    mask = np.zeros((len(windows), longest), dtype=np.int64)
    for row, window in enumerate(windows):
        n = len(window.input_ids)
        ids[row, :n], types[row, :n], mask[row, :n] = window.input_ids, window.token_type_ids, 1
    return Batch(ids, types, mask)


def run_windows(
    runtime: Runtime,
    windows: Sequence[Window],
    *,
    batch_size: int,
    pad_id: int,
    max_padding_share: float | None = None,
) -> list[WindowLogits]:
    """Start/end logits of every window, in the order given, through any backend.

    Args:
        runtime: the backend.
        windows: the windows.
        batch_size: the most windows per forward pass.
        pad_id: the tokenizer's pad token id.
        max_padding_share: see ``plan_batches`` (1.0: pad every batch to its longest); None: the
            runtime's own ``max_padding_share``, else ``MAX_PADDING_SHARE``.

    Returns:
        One WindowLogits per window (padding cut off), aligned with ``windows``.
    """
    lengths = [len(w.input_ids) for w in windows]
    multiple = getattr(runtime, "length_multiple", 1)
    if max_padding_share is None:
        max_padding_share = getattr(runtime, "max_padding_share", MAX_PADDING_SHARE)
    results: list[WindowLogits | None] = [None] * len(windows)
    for indices in plan_batches(lengths, batch_size, max_padding_share):
        starts, ends = runtime.logits(pad_batch([windows[i] for i in indices], pad_id, multiple))
        _check_shape(starts, ends, len(indices), padded_length(lengths[indices[0]], multiple))
        for row, index in enumerate(indices):
            window, n = windows[index], lengths[index]
            results[index] = WindowLogits(starts[row, :n], ends[row, :n], window.offsets, window.cls_index)
    return results  # type: ignore[return-value]  # every slot is filled above


def _check_shape(starts: Any, ends: Any, rows: int, length: int) -> None:
    """A backend that returns logits of another shape is a bug: fail here, not in the decoder."""
    expected = (rows, length)
    if starts.shape != expected or ends.shape != expected:
        raise RuntimeError(f"backend returned logits {starts.shape}/{ends.shape}, expected {expected}")
