"""The ONNX export of a reader, cached beside its weights and tied to them.

``finetune export --model DIR`` (or the first load of an ONNX backend) writes, per variant::

    DIR/onnx/fp32/model.onnx + export.json     (backends ``onnx`` and ``openvino``, which compiles it)
    DIR/onnx/int8/model.onnx + export.json     (backend ``onnx-int8``: int8 dynamic quantisation)

``export.json`` records the SHA-256 of the weights and config it came from and of the ``.onnx`` file
itself. Every load checks both: an export of other weights (the model was retrained in place) or a
truncated or edited file is rebuilt with a warning that names the file, or, where rebuilding is not
allowed or the folder is not writable, refused with an error that names it; never used as it is.
A variant is built in a temp folder beside its destination and renamed into place, so a reader never
sees half an export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from finetune.atomic import make_temp_dir, remove_path, replace_dir, write_json_atomic
from finetune.errors import FinetuneError
from finetune.models import broken_model_error
from finetune.runtime import ONNX, ONNX_INT8

logger = logging.getLogger(__name__)

EXPORT_DIR = "onnx"
MODEL_FILE = "model.onnx"
META_FILE = "export.json"
# Bump when the export recipe changes: exports of an older recipe are then rebuilt.
EXPORT_FORMAT = 1
# Opset 17 has LayerNormalization; every onnxruntime >= 1.14 runs it.
OPSET = 17
VARIANTS = {ONNX: "fp32", ONNX_INT8: "int8"}
# Files whose bytes define the exported graph (the tokenizer is loaded from the model dir as it is).
_WEIGHT_PATTERNS = ("*.safetensors", "pytorch_model*.bin")


class ExportError(FinetuneError):
    """An export that is missing, stale or corrupt and cannot be rebuilt here (the message names it)."""


@dataclass(frozen=True)
class ExportMeta:
    """What ``export.json`` holds.

    Attributes:
        format: ``EXPORT_FORMAT`` of the recipe that wrote it.
        backend: ``onnx`` or ``onnx-int8``.
        weights_sha256: SHA-256 over the model's config.json and weight files (names and bytes).
        onnx_sha256: SHA-256 of ``model.onnx``.
        opset: the ONNX opset.
        quantized: int8 dynamic quantisation applied.
        torch: torch version that exported it.
        onnxruntime: onnxruntime version that quantised / checked it.
    """

    format: int
    backend: str
    weights_sha256: str
    onnx_sha256: str
    opset: int
    quantized: bool
    torch: str
    onnxruntime: str


@dataclass(frozen=True)
class Export:
    """A checked export: its ``model.onnx`` and metadata, and whether this call built it."""

    path: Path
    meta: ExportMeta
    built: bool


class _Unusable(Exception):
    """Why an export on disk cannot be used (internal: turned into a rebuild or an ExportError)."""

    def __init__(self, path: Path, reason: str, missing: bool = False):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason, self.missing = path, reason, missing


def export_dir(model_dir: Path, backend: str, root: Path | None = None) -> Path:
    """The folder of one variant's export (``root`` default: ``model_dir/onnx``)."""
    if backend not in VARIANTS:
        raise ValueError(f"no ONNX export for backend {backend!r} (one of {sorted(VARIANTS)})")
    return (root if root is not None else Path(model_dir) / EXPORT_DIR) / VARIANTS[backend]


def weights_sha256(model_dir: Path) -> str:
    """SHA-256 over the model's ``config.json`` and weight files (each name, then its bytes)."""
    model_dir = Path(model_dir)
    files = [model_dir / "config.json"]
    files += sorted({p for pattern in _WEIGHT_PATTERNS for p in model_dir.glob(pattern)})
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        _hash_into(digest, path)
    return digest.hexdigest()


def _hash_into(digest: Any, path: Path) -> None:
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    _hash_into(digest, path)
    return digest.hexdigest()


def check_export(model_dir: Path, backend: str, root: Path | None = None) -> Export:
    """The export of ``backend`` when it is complete and of the model's current weights.

    Raises:
        ExportError: it is missing, stale or corrupt (the message names the file and the fix).
    """
    try:
        return _checked(model_dir, backend, root)
    except _Unusable as problem:
        raise ExportError(f"{problem}; rebuild it with: finetune export --model {model_dir}") from None


def _checked(model_dir: Path, backend: str, root: Path | None) -> Export:
    folder = export_dir(model_dir, backend, root)
    meta_path, onnx_path = folder / META_FILE, folder / MODEL_FILE
    if not meta_path.is_file():
        raise _Unusable(meta_path, "no export yet", missing=True)
    try:
        meta = ExportMeta(**json.loads(meta_path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError) as e:
        raise _Unusable(meta_path, f"unreadable export metadata ({type(e).__name__}: {e})") from None
    if meta.format != EXPORT_FORMAT or meta.backend != backend:
        raise _Unusable(meta_path, f"written by another export recipe ({meta.format}, {meta.backend})")
    if meta.weights_sha256 != weights_sha256(model_dir):
        raise _Unusable(onnx_path, f"stale: exported from other weights than those in {model_dir}")
    if not onnx_path.is_file():
        raise _Unusable(onnx_path, "missing")
    if file_sha256(onnx_path) != meta.onnx_sha256:
        raise _Unusable(onnx_path, "corrupt: its SHA-256 is not the one in export.json (truncated or edited)")
    return Export(onnx_path, meta, built=False)


def ensure_export(model_dir: Path, backend: str, root: Path | None = None, *, rebuild: bool = True) -> Export:
    """The checked export of ``backend``, built (or rebuilt) first when it is missing, stale or corrupt.

    Args:
        model_dir: the model directory (``config.json`` + weights).
        backend: ``onnx`` or ``onnx-int8``.
        root: where exports live (default ``model_dir/onnx``).
        rebuild: False: refuse a stale or corrupt export instead of rebuilding it.

    Raises:
        ExportError: the export is unusable and cannot (or may not) be rebuilt; names the file.
    """
    try:
        return _checked(model_dir, backend, root)
    except _Unusable as problem:
        if not rebuild and not problem.missing:
            raise ExportError(f"{problem}; rebuild it with: finetune export --model {model_dir}") from None
        if problem.missing:
            logger.info("building the %s export of %s (once; takes seconds)", backend, model_dir)
        else:
            logger.warning("%s; rebuilding it", problem)
    return build_export(model_dir, backend, root)


def build_export(model_dir: Path, backend: str, root: Path | None = None) -> Export:
    """Export (and for ``onnx-int8`` quantise) the model, then rename the variant's folder into place.

    Raises:
        ExportError: the destination is not writable (the message names it and the fix).
    """
    target = export_dir(model_dir, backend, root)
    try:
        tmp = make_temp_dir(target)
    except OSError as e:
        raise ExportError(
            f"cannot write the {backend} export to {target} ({e.strerror}): run `finetune export --model "
            f"{model_dir} --out DIR` where you may write and set HELPLINE_READER_EXPORT_DIR=DIR"
        ) from None
    try:
        weights = weights_sha256(model_dir)  # before exporting: weights replaced meanwhile make it stale
        onnx_path = tmp / MODEL_FILE
        with _quiet_exporter():
            _export_fp32(Path(model_dir), onnx_path if backend == ONNX else tmp / "fp32.onnx")
            if backend == ONNX_INT8:
                _quantize(tmp / "fp32.onnx", onnx_path)
                (tmp / "fp32.onnx").unlink()
        meta = ExportMeta(
            EXPORT_FORMAT, backend, weights, file_sha256(onnx_path), OPSET, backend == ONNX_INT8,
            _version("torch"), _version("onnxruntime"),
        )  # fmt: skip
        write_json_atomic(tmp / META_FILE, dataclasses.asdict(meta), indent=2)
        replace_dir(tmp, target)
    except BaseException:
        remove_path(tmp)
        raise
    logger.info("wrote %s", target / MODEL_FILE)
    return Export(target / MODEL_FILE, meta, built=True)


def _export_fp32(model_dir: Path, out: Path) -> None:
    """``torch.onnx.export`` of the model's start/end logits, batch and length dynamic."""
    import torch  # noqa: PLC0415 - heavy: only exporting needs it
    from transformers import AutoModelForQuestionAnswering  # noqa: PLC0415

    # Eager attention traces to the MatMul/Softmax pattern onnxruntime fuses into its Attention op.
    try:
        model = AutoModelForQuestionAnswering.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager"
        ).eval()
    except Exception as error:  # noqa: BLE001 - safetensors, tokenizers, transformers: many types
        raise broken_model_error(model_dir, error) from error
    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in _forward_parameters(model):
        names.append("token_type_ids")

    class Logits(torch.nn.Module):
        """The model with named inputs and a plain (start, end) output tuple."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> tuple[Any, Any]:
            output = self.model(**dict(zip(names, inputs, strict=True)))
            return output.start_logits, output.end_logits

    dummy = torch.ones((2, 16), dtype=torch.int64)
    types = torch.zeros_like(dummy)
    types[:, 8:] = 1
    args = (dummy, torch.ones_like(dummy), types)[: len(names)]
    outputs = ["start_logits", "end_logits"]
    # The TorchScript exporter (dynamo=False): one self-contained file, no onnxscript dependency, and
    # the graph onnxruntime's BERT fusions recognise.
    torch.onnx.export(
        Logits(), args, str(out), input_names=names, output_names=outputs, opset_version=OPSET,
        dynamic_axes={name: {0: "batch", 1: "length"} for name in names + outputs}, dynamo=False,
    )  # fmt: skip


def _forward_parameters(model: Any) -> set[str]:
    import inspect  # noqa: PLC0415

    return set(inspect.signature(model.forward).parameters)


def _quantize(fp32: Path, out: Path) -> None:
    """int8 dynamic quantisation: int8 weights, activations quantised per batch at run time."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: PLC0415

    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The tracer's and the quantiser's warnings (legacy exporter, "run pre-processing") are expected."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # onnxruntime.quantization logs on the root logger
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
