"""The Telegram application: builder settings, handler wiring, polling and webhook runners, logging.

Long polling is the default (works behind any firewall); webhook mode needs a public HTTPS URL that a
reverse proxy forwards to ``HELPLINE_WEBHOOK_LISTEN:HELPLINE_WEBHOOK_PORT``, and checks Telegram's
``X-Telegram-Bot-Api-Secret-Token`` header against a secret only the bot and Telegram know.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

from telegram import Bot, BotCommand, BotCommandScopeChat, Update
from telegram.error import InvalidToken, NetworkError, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    filters,
)

from bot import handlers
from bot.config import Settings
from bot.engine import AnswerEngine
from bot.store import Store

logger = logging.getLogger(__name__)

# Only what the handlers use: new messages and button presses (edits and reactions are ignored).
ALLOWED_UPDATES = [Update.MESSAGE, Update.CALLBACK_QUERY]
COMMANDS = [
    BotCommand("start", "Welcome and what I know"),
    BotCommand("help", "How to ask"),
    BotCommand("ask", "Ask a question (in groups)"),
]
# What each admin's own menu adds (set per admin with BotCommandScopeChat; members never see these).
ADMIN_COMMANDS = [
    BotCommand("faq", "The group's FAQ: add Q | A, list, remove N"),
    BotCommand("tickets", "Volunteer tickets: close old ones, list open"),
    BotCommand("stats", "Questions, answers, feedback"),
    BotCommand("reindex", "Rebuild the index from the documents"),
    BotCommand("reload", "Serve the newest model"),
]
VOLUNTEER_COMMANDS = [BotCommand("tickets", "Close old tickets, list the open ones")]
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class StartupError(RuntimeError):
    """The bot could not start; the message says what to fix (and never holds the token)."""


class RedactingFormatter(logging.Formatter):
    """A formatter that replaces the bot token wherever it appears (URLs in errors, tracebacks)."""

    def __init__(self, secret: str | None, fmt: str = LOG_FORMAT):
        super().__init__(fmt)
        self._secret = secret

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self._secret, "[token]") if self._secret else text


def configure_logging(settings: Settings, level: int = logging.INFO) -> None:
    """Log to stderr, with the token redacted and httpx (which logs every URL) turned down.

    Args:
        settings: for the token to redact.
        level: the root log level.
    """
    token = settings.telegram_bot_token.get_secret_value() if settings.telegram_bot_token else None
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(token))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)


def build_application(
    settings: Settings, engine: AnswerEngine, store: Store, *, faq_encoder: Any = None
) -> Application:
    """Build the bot: Bot API base URLs, rate limiter, concurrency, handlers, and warm-up on start.

    Args:
        settings: token, base URLs, limits.
        engine: answers questions (warmed up in ``post_init`` if it is not yet).
        store: logs questions, votes and admin commands.
        faq_encoder: the FAQ matcher's sentence encoder (default: the engine's, else MiniLM on demand).

    Returns:
        The application, ready for ``run_polling``/``run_webhook`` (or manual start in tests).
    """
    if settings.telegram_bot_token is None:
        raise ValueError("TELEGRAM_BOT_TOKEN is not set")
    application = (
        ApplicationBuilder()
        .token(settings.telegram_bot_token.get_secret_value())
        .base_url(settings.telegram_base_url)
        # Files (admins' documents) come from the same server as the API: a local Bot API server's
        # documents must never be fetched from the public host.
        .base_file_url(settings.file_base_url())
        # Waits out Telegram's flood limits, and after a 429 sleeps retry_after before retrying.
        .rate_limiter(
            AIORateLimiter(
                overall_max_rate=settings.telegram_max_rate, max_retries=settings.telegram_max_retries
            )
        )
        .concurrent_updates(settings.concurrent_updates)
        .post_init(post_init)
        .build()
    )
    application.bot_data[handlers.SERVICES_KEY] = handlers.Services.create(
        settings, engine, store, faq_encoder
    )
    register_handlers(application, settings.volunteer_chat_id)
    return application


def register_handlers(application: Application, volunteer_chat_id: int | None = None) -> None:
    """Wire every handler (order matters: commands before the text catch-all, volunteers' replies
    before questions, documents before the "I cannot read files" reply)."""
    new_messages = filters.UpdateType.MESSAGE
    private = filters.ChatType.PRIVATE
    for name, callback in (
        ("start", handlers.start),
        ("help", handlers.help_command),
        ("ask", handlers.ask),
        ("reindex", handlers.reindex),
        ("reload", handlers.reload),
        ("stats", handlers.stats),
        ("faq", handlers.faq),
        ("tickets", handlers.tickets),
    ):
        application.add_handler(CommandHandler(name, callback, filters=new_messages))
    application.add_handler(CallbackQueryHandler(handlers.on_ask_volunteer, pattern=r"^tk:"))
    application.add_handler(CallbackQueryHandler(handlers.on_feedback))
    if volunteer_chat_id is not None:
        volunteers = filters.Chat(chat_id=volunteer_chat_id) & filters.REPLY & ~filters.COMMAND
        application.add_handler(MessageHandler(new_messages & volunteers, handlers.on_volunteer_reply))
    application.add_handler(MessageHandler(new_messages & filters.TEXT & ~filters.COMMAND, handlers.on_text))
    application.add_handler(
        MessageHandler(new_messages & private & filters.COMMAND, handlers.on_unknown_command)
    )
    application.add_handler(
        MessageHandler(new_messages & private & filters.Document.ALL, handlers.on_document)
    )
    not_text = ~filters.TEXT & ~filters.StatusUpdate.ALL
    application.add_handler(MessageHandler(new_messages & private & not_text, handlers.on_not_text))
    application.add_error_handler(handlers.on_error)


async def post_init(application: Application) -> None:
    """Before the first update: load the model and index, and publish the command menus."""
    svc: handlers.Services = application.bot_data[handlers.SERVICES_KEY]
    await asyncio.to_thread(svc.engine.warm_up)
    await publish_commands(application.bot, svc.settings)
    logger.info("bot @%s ready", application.bot.username)


async def publish_commands(bot: Bot, settings: Settings) -> None:
    """Command menus by role: members' commands for everyone; each admin's private chat (the chat id
    of a user's private chat is the user id) also gets the admin commands; the volunteers' chat
    gets /tickets. Refreshed at every start, so a changed HELPLINE_ADMIN_IDS shows at once."""
    await bot.set_my_commands(COMMANDS)
    scoped = [(admin, COMMANDS + ADMIN_COMMANDS) for admin in sorted(settings.admin_ids)]
    if settings.volunteer_chat_id is not None:
        scoped.append((settings.volunteer_chat_id, COMMANDS + VOLUNTEER_COMMANDS))
    for chat_id, commands in scoped:
        try:
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(chat_id))
        except TelegramError as e:  # e.g. an admin who never opened a chat with the bot: "chat not found"
            logger.warning("could not set the command menu of chat %s: %s", chat_id, e)


def check_telegram(settings: Settings) -> str:
    """Ask the Bot API whose token this is (getMe) before anything slow loads.

    Args:
        settings: token and base URL.

    Returns:
        The bot's @username.

    Raises:
        StartupError: Telegram refused the token, or the Bot API cannot be reached.
    """

    async def who_am_i() -> str:
        async with Bot(
            settings.telegram_bot_token.get_secret_value(), base_url=settings.telegram_base_url
        ) as bot:
            return bot.username

    try:
        with _quiet_http_parse_errors():
            return asyncio.run(who_am_i())
    except InvalidToken as e:
        raise _token_error(settings.telegram_base_url, e) from e
    except NetworkError as e:
        url = settings.telegram_base_url
        raise StartupError(
            f"cannot reach the Bot API at {url} (TELEGRAM_BASE_URL): {type(e).__name__}"
        ) from e


@contextlib.contextmanager
def _quiet_http_parse_errors() -> Iterator[None]:
    """PTB logs a traceback when a reply is not JSON (e.g. a web server's 404 page); the StartupError
    that follows says what went wrong in one line, so that log is held back during getMe."""
    request_logger = logging.getLogger("telegram.request")
    level = request_logger.level
    request_logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        request_logger.setLevel(level)


def _token_error(url: str, error: InvalidToken) -> StartupError:
    """What a refused getMe means. PTB raises InvalidToken for 401 and 404 alike; the token's shape
    is checked before, and a Bot API answers a well-formed wrong token with 401, so a 404 means the
    server at the URL is something else (a wrong TELEGRAM_BASE_URL)."""
    # Bot.initialize re-raises the request's InvalidToken with a message of its own: read the chain.
    messages = " ".join(str(e) for e in (error, error.__cause__, error.__context__) if e is not None)
    if "Not Found" in messages or "(404)" in messages:
        return StartupError(
            f"the server at {url} (TELEGRAM_BASE_URL) is not a Telegram Bot API: it answered getMe with "
            "404 Not Found; check the URL (Telegram's is https://api.telegram.org/bot)"
        )
    return StartupError("Telegram rejected TELEGRAM_BOT_TOKEN: copy the token again from @BotFather")


def run_bot(application: Application, settings: Settings, webhook_url: str | None = None) -> None:
    """Run until SIGINT/SIGTERM (both stop it cleanly): long polling, or a webhook when a URL is given.

    Args:
        application: the built application.
        settings: polling timeout, webhook listen address and secret.
        webhook_url: the public webhook URL; None for long polling.
    """
    # run_polling/run_webhook run on the current event loop (and close it when they stop); give them a
    # fresh one, whatever asyncio.run calls (check_telegram) happened before.
    asyncio.set_event_loop(asyncio.new_event_loop())
    if webhook_url is None:
        run_polling(application, settings)
    else:
        run_webhook(application, settings, webhook_url)


def run_polling(application: Application, settings: Settings) -> None:
    """Run until SIGINT/SIGTERM, fetching updates by long polling."""
    application.run_polling(timeout=settings.polling_timeout, allowed_updates=ALLOWED_UPDATES)


def webhook_secret(settings: Settings) -> str:
    """``HELPLINE_WEBHOOK_SECRET``, or a fresh random one (1-256 chars of A-Z a-z 0-9 _ -)."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value()
    return secrets.token_urlsafe(32)


def run_webhook(application: Application, settings: Settings, webhook_url: str) -> None:
    """Run until SIGINT/SIGTERM, receiving updates on ``webhook_url`` (registered with Telegram).

    Args:
        application: the built application.
        settings: where to listen (``webhook_listen``, ``webhook_port``) and the secret.
        webhook_url: the public URL; its path is the path the local server serves.
    """
    application.run_webhook(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=urlparse(webhook_url).path.strip("/"),
        webhook_url=webhook_url,
        secret_token=webhook_secret(settings),
        allowed_updates=ALLOWED_UPDATES,
    )
