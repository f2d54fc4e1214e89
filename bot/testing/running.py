"""Run the real Telegram application inside the caller's event loop (tests and benchmarks)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from telegram.ext import Application

from bot.app import ALLOWED_UPDATES, build_application, post_init, webhook_secret
from bot.config import Settings
from bot.engine import AnswerEngine
from bot.store import Store


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@asynccontextmanager
async def running_bot(
    settings: Settings, engine: AnswerEngine, store: Store, *, webhook: bool = False, faq_encoder: Any = None
) -> AsyncIterator[Application]:
    """Run the real application inside the test's event loop: what ``run_polling``/``run_webhook`` do,
    minus their signal handling and loop management.

    Args:
        settings: must point ``telegram_base_url`` at a FakeTelegram.
        engine: the answer engine.
        store: the store.
        webhook: receive updates on a local webhook (the fake POSTs them) instead of long polling.
        faq_encoder: the FAQ matcher's encoder (a fake keeps tests fast).
    """
    application = build_application(settings, engine, store, faq_encoder=faq_encoder)
    await application.initialize()
    await post_init(application)
    await application.start()
    if webhook:
        port = free_port()
        await application.updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="telegram",
            webhook_url=f"http://127.0.0.1:{port}/telegram",
            secret_token=webhook_secret(settings),
            allowed_updates=ALLOWED_UPDATES,
        )
    else:
        await application.updater.start_polling(
            poll_interval=0.0, timeout=settings.polling_timeout, allowed_updates=ALLOWED_UPDATES
        )
    try:
        yield application
    finally:
        await application.updater.stop()
        await application.stop()
        await application.shutdown()
