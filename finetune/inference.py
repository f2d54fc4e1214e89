"""Run a QA model in torch: device and precision choice, and the ``torch`` backend of ``finetune.runtime``.

Shared by the Reader (the bot), ``finetune evaluate`` and the per-epoch dev evaluation in training.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import torch

from finetune.errors import ConfigError
from finetune.features import Window
from finetune.postprocess import WindowLogits
from finetune.runtime import Batch, cpu_flags, run_windows

logger = logging.getLogger(__name__)

# CPU flags that make bf16 matmuls fast (Intel AMX or AVX512-BF16); without them bf16 is emulated/slow.
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@cache
def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 natively (AMX or AVX512-BF16).

    ``torch.backends.cpu.get_cpu_capability()`` reports only the vector ISA it dispatches to (e.g.
    "AVX512"), which does not tell AVX512-BF16 apart, so the kernel's CPU flags are read as well.
    """
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if "AMX" in capability:
        return True
    return any(flag in cpu_flags() for flag in _BF16_CPU_FLAGS)


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


class TorchRuntime:
    """The ``torch`` backend: a ``*ForQuestionAnswering`` model (on its device, in eval mode).

    Args:
        model: the model.
        dtype: autocast dtype, or None for fp32.
    """

    name = "torch"

    def __init__(self, model: Any, dtype: torch.dtype | None = None):
        self.model = model
        self.dtype = dtype
        self.device = next(model.parameters()).device
        self._inputs = frozenset(inspect.signature(model.forward).parameters)

    @torch.inference_mode()
    def logits(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        inputs = batch.feeds(self._inputs)
        tensors = {name: torch.from_numpy(array).to(self.device) for name, array in inputs.items()}
        with autocast_context(self.device, self.dtype):
            output = self.model(**tensors)
        return output.start_logits.float().cpu().numpy(), output.end_logits.float().cpu().numpy()


def forward_windows(
    model: Any,
    windows: Sequence[Window],
    *,
    batch_size: int,
    pad_id: int,
    dtype: torch.dtype | None = None,
) -> list[WindowLogits]:
    """Start/end logits of every window of a torch model, in the order given (see ``run_windows``).

    Args:
        model: a ``*ForQuestionAnswering`` model (already on its device, in eval mode).
        windows: the windows.
        batch_size: windows per forward pass.
        pad_id: the tokenizer's pad token id.
        dtype: autocast dtype, or None for fp32.

    Returns:
        One WindowLogits per window (padding cut off), aligned with ``windows``.
    """
    return run_windows(TorchRuntime(model, dtype), windows, batch_size=batch_size, pad_id=pad_id)
