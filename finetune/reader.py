"""The Reader the bot uses: a fine-tuned QA model that marks answer spans in a batch of contexts.

Three parts, like haystack's ExtractiveReader: ``__init__`` checks and stores settings, ``warm_up()``
loads model and tokenizer once, ``read()`` does the work. All windows of all contexts of a question go
through the model in batched forward passes of similar-length windows (``finetune.runtime``), on the
backend chosen at warm-up: torch, or the model's ONNX export run by onnxruntime (``finetune.export``).
An int8 reader can also read exactly, on the unquantised (fp32) export: ``read(..., exact=True)``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from finetune.errors import ConfigError
from finetune.features import ContextTokens, Window, fit_questions
from finetune.inference import TorchRuntime, autocast_dtype, pick_device
from finetune.models import ModelLoadError, ModelNotFoundError, broken_model_error, one_line
from finetune.postprocess import WindowLogits, decode_question
from finetune.reader_config import ReaderConfig
from finetune.runtime import (
    AUTO,
    ONNX,
    ONNX_INT8,
    OPENVINO,
    TORCH,
    OnnxRuntime,
    OpenVinoRuntime,
    Runtime,
    first_pass,
    openvino_precision,
    resolve_backend,
    run_windows,
)  # fmt: skip
from finetune.types import Reading

__all__ = ["ModelLoadError", "Reader", "ReaderNotReadyError"]

logger = logging.getLogger(__name__)


class ReaderNotReadyError(RuntimeError):
    """``read()`` was called before ``warm_up()``."""


class Reader:
    """Extractive QA over a batch of contexts.

    Thread safety: ``read()`` may be called from several threads at once (the bot answers from worker
    threads). Decoding runs in parallel; the forward pass is serialised by a lock, because concurrent
    passes would only fight over the same cores (or GPU) and multiply peak memory. Tokenizing has a
    lock of its own: a fast tokenizer sets its truncation settings on the shared Rust object for every
    call, and two threads doing that at once fail with "Already borrowed".
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        device: str | None = None,
        max_seq_length: int | None = None,
        doc_stride: int | None = None,
        max_answer_length: int | None = None,
        n_best_size: int | None = None,
        batch_size: int = 32,
        precision: str = "auto",
        num_threads: int | None = None,
        backend: str = AUTO,
        export_dir: Path | None = None,
        exact_rereads: bool = False,
    ) -> None:
        """Check and store the settings; only the small ``reader_config.json`` is read before ``warm_up()``.

        The window and decoding settings are the model's own (``reader_config.json``, written by
        ``finetune train``; the ``ReaderConfig`` defaults when the directory has none); the four
        arguments below override them (None: keep the model's).

        Args:
            model_dir: a directory written by ``finetune train`` (or any QA model directory).
            device: ``cpu``, ``cuda``, ``cuda:1``...; None picks CUDA when available, else CPU.
            max_seq_length: tokens per window.
            doc_stride: overlap between windows of a long context.
            max_answer_length: the longest answer, in tokens.
            n_best_size: start/end tokens paired per window; candidate spans kept per context.
            batch_size: windows per forward pass.
            precision: ``auto`` (bf16 autocast on bf16 CPUs and GPUs, fp16 on other GPUs), or
                ``fp32``, ``bf16``, ``fp16``.
            num_threads: torch CPU threads, set for the whole process by ``warm_up()`` (None: leave
                torch's default, one per core). On a CPU shared with other busy processes, 1 can be
                several times faster: the threads of one op wait for each other at every barrier.
                The ONNX backends take it as their intra-op thread count.
            backend: ``auto``, ``torch``, ``onnx``, ``onnx-int8`` or ``openvino`` (see ``finetune.runtime``).
            export_dir: where the ONNX exports live (None: ``model_dir/onnx``); built there on first
                load when missing or stale.
            exact_rereads: an approximate reader (int8; OpenVINO in bf16) also loads its exact runtime
                at warm-up, for ``read(..., exact=True)`` (otherwise loaded on the first such call).
        """
        self.model_dir = Path(model_dir)
        overrides = {
            "max_seq_length": max_seq_length,
            "doc_stride": doc_stride,
            "max_answer_length": max_answer_length,
            "n_best_size": n_best_size,
        }
        self.config = dataclasses.replace(
            ReaderConfig.load(self.model_dir), **{k: v for k, v in overrides.items() if v is not None}
        )
        self.windows = self.config.windows
        self.decode = self.config.decode
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = batch_size
        if num_threads is not None and num_threads < 1:
            raise ConfigError(f"num_threads must be at least 1, got {num_threads}")
        self.num_threads = num_threads
        self.device = pick_device(device)
        self.dtype = autocast_dtype(self.device, precision)
        self.choice = resolve_backend(backend, self.device.type)  # fails now on a bad setting
        self.export_dir = Path(export_dir) if export_dir is not None else None
        self.exact_rereads = exact_rereads
        self._runtime: Runtime | None = None
        self._exact_runtime: Runtime | None = None  # an approximate reader's exact runtime (see approximate)
        self._model: Any = None
        self._tokenizer: Any = None
        self._contexts: ContextTokens | None = None  # the passages' tokens, kept across questions
        # Questions too long for a window, read by their first tokens (see features.fit_questions).
        self.questions_cut = 0
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()

    @property
    def is_warm(self) -> bool:
        return self._runtime is not None

    @property
    def backend(self) -> str:
        """The backend that reads: ``torch``, ``onnx``, ``onnx-int8`` or ``openvino`` (``auto`` resolved)."""
        return self.choice.name

    @property
    def approximate(self) -> bool:
        """True when the backend reads with rounded weights or activations (int8; OpenVINO in bf16), so
        that ``read(..., exact=True)`` reads otherwise: on the fp32 export (onnxruntime's or OpenVINO's
        in f32), whose answers are torch's. Torch's own bf16 autocast is the reference, not approximate."""
        if self.backend == OPENVINO:
            return openvino_precision() != "f32"
        return self.backend == ONNX_INT8

    def warm_up(self) -> None:
        """Load model and tokenizer (once; later calls do nothing).

        Weights load as fp32 whatever dtype they were saved in (a float16 model directory is fine);
        speed comes from autocast instead, which keeps the numerically delicate parts in fp32.

        Raises:
            ModelNotFoundError: ``model_dir`` holds no model.
            ModelLoadError: its files cannot be loaded.
        """
        from transformers import AutoModelForQuestionAnswering, AutoTokenizer  # noqa: PLC0415 - heavy

        with self._lock:
            if self._runtime is not None:
                return
            if not (self.model_dir / "config.json").is_file():
                raise ModelNotFoundError(
                    f"no model in {self.model_dir} (config.json missing): train one first"
                )
            if self.num_threads is not None and self.backend == TORCH:
                torch.set_num_threads(self.num_threads)
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
                if self.backend == TORCH:
                    model = AutoModelForQuestionAnswering.from_pretrained(self.model_dir, dtype=torch.float32)
            except Exception as error:  # noqa: BLE001 - safetensors, tokenizers, transformers: many types
                raise broken_model_error(self.model_dir, error) from error
            if self.backend == TORCH:
                model.to(self.device).eval()
                self._model = model
                runtime: Runtime = TorchRuntime(model, self.dtype)
                detail = f"autocast {self.dtype}"
            else:
                runtime = self._onnx_runtime(self.backend)
                openvino = isinstance(runtime, OpenVinoRuntime)
                engine = f"openvino {runtime.precision}" if openvino else "onnxruntime"
                detail = f"{engine}, {self.num_threads or 'all'} threads"
                if self.approximate and self.exact_rereads:
                    self._exact_runtime = self._exact_onnx_runtime()
                    detail += ", fp32 export for exact re-reads"
            for fresh in (runtime, self._exact_runtime):
                if fresh is not None:
                    first_pass(fresh, tokenizer.pad_token_id or 0)
            self._tokenizer = tokenizer
            self._contexts = ContextTokens(tokenizer, self.windows)
            self._runtime = runtime
            logger.info(
                "reader %s loaded on %s: backend %s (%s; %s)",
                self.model_dir, self.device, self.backend, self.choice.reason, detail,
            )  # fmt: skip

    def _onnx_runtime(self, backend: str, *, exact: bool = False) -> Runtime:
        """The checked (or freshly built) export of ``backend`` in its runtime: an onnxruntime session, or
        for ``openvino`` the fp32 export compiled by OpenVINO (``exact``: in f32)."""
        from finetune.export import ensure_export  # noqa: PLC0415 - torch.onnx only when it builds

        export = ensure_export(self.model_dir, ONNX if backend == OPENVINO else backend, self.export_dir)
        try:
            if backend == OPENVINO:
                return OpenVinoRuntime(export.path, self.num_threads, exact=exact)
            return OnnxRuntime(export.path, backend, self.num_threads)
        except Exception as error:  # noqa: BLE001 - onnxruntime and openvino raise their own exception types
            engine = "openvino" if backend == OPENVINO else "onnxruntime"
            raise ModelLoadError(f"{engine} cannot load {export.path} ({one_line(error)})") from error

    def _exact_onnx_runtime(self) -> Runtime:
        """The runtime of exact re-reads: the fp32 export, in OpenVINO (f32) for an OpenVINO reader."""
        if self.backend == OPENVINO:
            return self._onnx_runtime(OPENVINO, exact=True)
        return self._onnx_runtime(ONNX)

    def read(
        self, question: str, contexts: Sequence[str], top_k: int = 1, *, exact: bool = False
    ) -> list[Reading]:
        """Find the answer spans to one question in each context.

        Args:
            question: the question.
            contexts: the passages to read (all in one batched forward pass).
            top_k: spans kept per context.
            exact: read on the unquantised model (an int8 reader's fp32 export; any other backend reads
                as it always does).

        Returns:
            One Reading per context, in context order; spans best first, with probabilities from one
            softmax over the candidates of all contexts (comparable across contexts).

        Raises:
            ReaderNotReadyError: ``warm_up()`` has not been called.
            ValueError: ``top_k`` < 1.
        """
        if self._runtime is None:
            raise ReaderNotReadyError("Reader.read() called before warm_up()")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if not contexts:
            return []
        with self._tokenizer_lock:
            (question,), cut = fit_questions(self._tokenizer, [question], self.windows)
            self.questions_cut += cut
            windows = self._contexts.windows(question, contexts)
        logits = self.forward(windows, exact=exact)
        grouped: list[list[WindowLogits]] = [[] for _ in contexts]
        for window, window_logits in zip(windows, logits, strict=True):
            grouped[window.example_index].append(window_logits)
        return decode_question(list(contexts), grouped, self.decode, top_k)

    def forward(self, windows: Sequence[Window], *, exact: bool = False) -> list[WindowLogits]:
        """Start/end logits of windows on the reader's backend (evaluation code batches many questions);
        ``exact``: on the unquantised model (see ``read``).

        Raises:
            ReaderNotReadyError: ``warm_up()`` has not been called.
        """
        if self._runtime is None:
            raise ReaderNotReadyError("Reader.forward() called before warm_up()")
        if not windows:
            return []
        with self._lock:
            runtime = self._runtime
            if exact and self.approximate:
                if self._exact_runtime is None:
                    self._exact_runtime = self._exact_onnx_runtime()
                runtime = self._exact_runtime
            return run_windows(
                runtime, windows, batch_size=self.batch_size, pad_id=self._tokenizer.pad_token_id or 0
            )

    @property
    def model(self) -> Any:
        """The loaded torch model (torch backend only)."""
        if self._model is None:
            raise ReaderNotReadyError(f"Reader.model used before warm_up() or on the {self.backend} backend")
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The loaded tokenizer."""
        if self._tokenizer is None:
            raise ReaderNotReadyError("Reader.tokenizer used before warm_up()")
        return self._tokenizer
