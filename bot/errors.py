"""Errors the bot raises on bad input or bad artifacts (user errors, not bugs)."""

from __future__ import annotations


class BotError(Exception):
    """Base class of the bot's user errors: the CLIs print the message and exit 1, no traceback."""


class BadInputError(BotError, ValueError):
    """A command-line value the bot cannot use (the message names it)."""


class ModelDirError(BotError):
    """The configured model directory holds no model (the message names the path)."""
