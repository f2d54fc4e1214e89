"""Run a QA model over windows: device and precision choice, length-sorted batching, logits out.

Shared by the Reader (the bot), ``finetune evaluate`` and the per-epoch dev evaluation in training.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetune.errors import ConfigError
from finetune.features import Window
from finetune.postprocess import WindowLogits

logger = logging.getLogger(__name__)

# CPU flags that make bf16 matmuls fast (Intel AMX or AVX512-BF16); without them bf16 is emulated/slow.
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
_CPUINFO = Path("/proc/cpuinfo")


@cache
def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 natively (AMX or AVX512-BF16).

    ``torch.backends.cpu.get_cpu_capability()`` reports only the vector ISA it dispatches to (e.g.
    "AVX512"), which does not tell AVX512-BF16 apart, so the kernel's CPU flags are read as well.
    """
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if "AMX" in capability:
        return True
    try:
        flags = set(_CPUINFO.read_text(errors="replace").split())
    except OSError:
        return False
    return any(flag in flags for flag in _BF16_CPU_FLAGS)


def pick_device(device: str | None = None) -> torch.device:
    """The given device, else CUDA when available, else CPU."""
    if device:
        try:
            return torch.device(device)
        except RuntimeError as e:  # torch's "Expected one of cpu, cuda, ... device type"
            raise ConfigError(f"--device {device!r} is not a device: {e}") from None
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device (None: plain fp32).

    Args:
        device: where the model runs.
        precision: ``auto`` (bf16 on bf16-capable CPUs and GPUs, fp16 on other GPUs, else fp32),
            ``fp32``, ``bf16`` or ``fp16``.

    Returns:
        torch.bfloat16, torch.float16 or None.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16
    if precision != "auto":
        raise ConfigError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if device.type == "cpu" and cpu_supports_bf16() else None


def autocast_context(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _pad_batch(windows: Sequence[Window], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a batch of windows to its longest member."""
    longest = max(len(w.input_ids) for w in windows)
    ids = np.full((len(windows), longest), pad_id, dtype=np.int64)
    types = np.zeros((len(windows), longest), dtype=np.int64)
    mask = np.zeros((len(windows), longest), dtype=np.int64)
    for row, window in enumerate(windows):
        n = len(window.input_ids)
        ids[row, :n], types[row, :n], mask[row, :n] = window.input_ids, window.token_type_ids, 1
    batch = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
    return {name: torch.from_numpy(array).to(device) for name, array in batch.items()}


@torch.inference_mode()
def forward_windows(
    model: Any,
    windows: Sequence[Window],
    *,
    batch_size: int,
    pad_id: int,
    dtype: torch.dtype | None = None,
) -> list[WindowLogits]:
    """Start/end logits of every window, in the order given.

    Windows are run longest first in batches of ``batch_size``, so each batch pads to a similar length.

    Args:
        model: a ``*ForQuestionAnswering`` model (already on its device, in eval mode).
        windows: the windows.
        batch_size: windows per forward pass.
        pad_id: the tokenizer's pad token id.
        dtype: autocast dtype, or None for fp32.

    Returns:
        One WindowLogits per window (padding cut off), aligned with ``windows``.
    """
    device = next(model.parameters()).device
    accepts_types = "token_type_ids" in inspect.signature(model.forward).parameters
    order = np.argsort([-len(w.input_ids) for w in windows], kind="stable")
    results: list[WindowLogits | None] = [None] * len(windows)
    for begin in range(0, len(order), batch_size):
        chunk = [windows[i] for i in order[begin : begin + batch_size]]
        inputs = _pad_batch(chunk, pad_id, device)
        if not accepts_types:
            inputs.pop("token_type_ids")
        with autocast_context(device, dtype):
            output = model(**inputs)
        starts = output.start_logits.float().cpu().numpy()
        ends = output.end_logits.float().cpu().numpy()
        for row, index in enumerate(order[begin : begin + batch_size]):
            window = windows[index]
            n = len(window.input_ids)
            results[index] = WindowLogits(starts[row, :n], ends[row, :n], window.offsets, window.cls_index)
    return results  # type: ignore[return-value]  # every slot is filled above
