"""Errors ``finetune`` raises on bad input (user errors, not bugs): the CLI prints them in one line.

Each also subclasses ``ValueError`` where a caller may already catch that for a bad value.
"""

from __future__ import annotations


class FinetuneError(Exception):
    """Base class of every user error ``finetune`` raises; anything else is a bug and keeps its traceback."""


class ConfigError(FinetuneError, ValueError):
    """A setting has a bad value (the message names it and the value)."""


class ReaderConfigError(FinetuneError, ValueError):
    """A model directory's ``reader_config.json`` is unreadable or holds bad or unknown keys."""


class FileAccessError(FinetuneError, OSError):
    """A file or folder cannot be read or written (the message names it)."""
