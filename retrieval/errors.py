"""Errors the retrieval package raises to its callers."""

from __future__ import annotations


class RetrievalError(Exception):
    """Base class for every error ``retrieval`` raises on bad input (a user error, not a bug)."""


class SettingsError(RetrievalError, ValueError):
    """A setting has a bad value, or a saved settings object holds unknown keys."""


class IndexLoadError(RetrievalError):
    """The index directory is missing, corrupt, foreign or of an older format."""


class IndexBuildError(RetrievalError):
    """The index could not be built (bad documents folder, unwritable target, no usable documents)."""


class TrainingDataError(RetrievalError, ValueError):
    """Training the query encoder cannot start: bad questions file, options or output folder."""
