"""The reader's window and decoding settings, kept in the model directory (``reader_config.json``).

A model is trained and evaluated with some window length and stride; serving it with others changes
its answers. So ``finetune train`` writes them next to the weights and ``Reader(model_dir)`` reads
them back. There is one set of defaults: ``TrainConfig``, the CLI options and a model
directory without the file (a hub model, an older run) all take them from ``ReaderConfig`` (which
takes them from ``WindowSettings`` and ``DecodeSettings``).

Adding a setting later: add a field with a default; files written before it simply lack the key.
A key the code does not know is an error naming the file, so a typo never passes silently.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.atomic import write_json_atomic
from finetune.errors import ConfigError, ReaderConfigError
from finetune.features import WindowSettings
from finetune.postprocess import DecodeSettings

READER_CONFIG_FILE = "reader_config.json"
# The field annotations are strings (postponed evaluation); bool is refused where an int is meant.
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"int": int, "float": (int, float), "bool": bool}


@dataclass(frozen=True)
class ReaderConfig:
    """How a model reads: windows over long contexts, and which spans it may answer with.

    Attributes:
        max_seq_length: tokens per window (question + context + special tokens).
        doc_stride: tokens of overlap between consecutive windows of a long context.
        max_answer_length: the longest answer, in tokens.
        n_best_size: start/end tokens paired per window; candidate spans kept per context.
        null_threshold: on SQuAD v2 data, ``finetune evaluate`` answers "no answer" unless the best
            span's score beats the no-answer score by more than this (tuned per model by
            ``bench/tune_null_threshold.py``; the bot decides with its calibration instead).
    """

    # The values themselves live once, on the two settings objects this one is made of.
    max_seq_length: int = WindowSettings.max_seq_length
    doc_stride: int = WindowSettings.doc_stride
    max_answer_length: int = DecodeSettings.max_answer_length
    n_best_size: int = DecodeSettings.n_best_size
    null_threshold: float = 0.0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            expected = _FIELD_TYPES[str(field.type)]
            if isinstance(value, bool) is not (expected is bool) or not isinstance(value, expected):
                raise ConfigError(f"{field.name} must be {field.type}, got {value!r}")
        try:  # their checks run now, not at the first question
            self.windows  # noqa: B018
            self.decode  # noqa: B018
        except ValueError as e:
            raise ConfigError(str(e)) from None

    @property
    def windows(self) -> WindowSettings:
        """The window settings of the features."""
        return WindowSettings(self.max_seq_length, self.doc_stride)

    @property
    def decode(self) -> DecodeSettings:
        """The span decoder's settings."""
        return DecodeSettings(self.n_best_size, self.max_answer_length)

    def to_json(self) -> dict[str, Any]:
        """The settings as a JSON object (what ``save`` writes)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, values: dict[str, Any], source: str) -> ReaderConfig:
        """Settings from a JSON object; missing keys take the defaults.

        Raises:
            ReaderConfigError: an unknown key or a bad value (the message names ``source``).
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ReaderConfigError(f"{source}: unknown keys {unknown} (known: {sorted(known)})")
        try:
            return cls(**values)
        except (TypeError, ValueError) as e:
            raise ReaderConfigError(f"{source}: {e}") from None

    @classmethod
    def load(cls, model_dir: Path) -> ReaderConfig:
        """The settings a model directory was trained with; the defaults when it has no such file.

        Raises:
            ReaderConfigError: the file is not a JSON object, or holds unknown keys or bad values.
        """
        path = Path(model_dir) / READER_CONFIG_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except (OSError, UnicodeDecodeError) as e:
            raise ReaderConfigError(f"{path}: cannot read it: {e}") from None
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ReaderConfigError(f"{path}: not JSON ({e})") from None
        if not isinstance(values, dict):
            raise ReaderConfigError(f"{path}: expected a JSON object, got {type(values).__name__}")
        return cls.from_json(values, str(path))

    def save(self, model_dir: Path) -> Path:
        """Write ``reader_config.json`` into ``model_dir`` (atomically: temp file, then rename)."""
        path = Path(model_dir) / READER_CONFIG_FILE
        write_json_atomic(path, self.to_json(), indent=2)
        return path
