"""Application wiring that the end-to-end tests do not show: token redaction, webhook secrets."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from bot.app import RedactingFormatter, build_application, configure_logging, webhook_secret
from bot.engine import AnswerEngine
from bot.store import Store
from tests.bot_fakes import FakeIndex, FakeReader, make_settings

TOKEN = "123:SECRET-token"


def test_formatter_redacts_the_token_in_messages_and_tracebacks() -> None:
    formatter = RedactingFormatter(TOKEN)
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/getMe failed")
    except RuntimeError as e:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "url %s", (f"/bot{TOKEN}/x",), (type(e), e, None)
        )
    text = formatter.format(record)
    assert TOKEN not in text
    assert text.count("[token]") == 2


def test_configure_logging_quietens_httpx(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level, httpx_level = root.handlers[:], root.level, logging.getLogger("httpx").level
    try:
        configure_logging(make_settings(tmp_path, telegram_bot_token=TOKEN))
        assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING
        assert isinstance(root.handlers[0].formatter, RedactingFormatter)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("httpx").setLevel(httpx_level)


def test_webhook_secret_is_random_unless_configured(tmp_path: Path) -> None:
    first, second = webhook_secret(make_settings(tmp_path)), webhook_secret(make_settings(tmp_path))
    assert first != second
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", first)
    assert webhook_secret(make_settings(tmp_path, webhook_secret="kept-secret")) == "kept-secret"


def test_application_needs_a_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    engine = AnswerEngine.from_settings(settings, reader=FakeReader(), index=FakeIndex())
    with pytest.raises(ValueError, match="TELEGRAM_BOT_TOKEN"):
        build_application(settings, engine, Store.from_settings(settings))
