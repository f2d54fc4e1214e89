"""Telegram handlers: members' questions, feedback buttons, admin commands and the error handler.

Each handler is ``async def x(update, context) -> None``; ``bot.app.build_application`` wires them.
The engine and the store block (a forward pass, SQLite), so they run in worker threads via
``asyncio.to_thread``; a semaphore bounds how many forward passes run at once.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import sqlite3
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from telegram import Bot, LinkPreviewOptions, Message, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import formatting
from bot.config import Settings
from bot.engine import Answer, AnswerEngine
from bot.store import Store

logger = logging.getLogger(__name__)

SERVICES_KEY = "helpline"
# The rate limit is "questions per minute": a sliding window of this many seconds.
RATE_WINDOW_S = 60.0
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# Telegram shows a chat action for about 5 seconds; renew it a little before that.
TYPING_REFRESH_S = 4.5


class MemberRateLimiter:
    """A sliding-window limit on questions per member.

    Args:
        max_per_window: questions a member may ask within ``window_s``.
        window_s: the window length in seconds.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        max_per_window: int,
        window_s: float = RATE_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_per_window = max_per_window
        self.window_s = window_s
        self._clock = clock
        self._asked: defaultdict[int, deque[float]] = defaultdict(deque)
        self._next_sweep = clock() + window_s

    @property
    def tracked_members(self) -> int:
        """Members with a question inside the window (or not yet swept out)."""
        return len(self._asked)

    def wait_time(self, member_id: int) -> float:
        """Record a question if the member is within the limit.

        Args:
            member_id: the Telegram user id.

        Returns:
            0.0 when the question may go ahead (and is counted), else seconds until it may.
        """
        now = self._clock()
        self._sweep(now)
        asked = self._asked[member_id]
        while asked and asked[0] <= now - self.window_s:
            asked.popleft()
        if len(asked) >= self.max_per_window:
            return asked[0] + self.window_s - now
        asked.append(now)
        return 0.0

    def _sweep(self, now: float) -> None:
        """Forget members whose questions have all left the window (at most once a window: O(1) amortised)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.window_s
        horizon = now - self.window_s
        idle = [member for member, asked in self._asked.items() if not asked or asked[-1] <= horizon]
        for member in idle:
            del self._asked[member]


@dataclass
class Services:
    """What the handlers share, kept in ``application.bot_data[SERVICES_KEY]``."""

    settings: Settings
    engine: AnswerEngine
    store: Store
    limiter: MemberRateLimiter
    inference: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(1))

    @classmethod
    def create(cls, settings: Settings, engine: AnswerEngine, store: Store) -> Services:
        """Services with the rate limit and inference bound taken from ``settings``."""
        limiter = MemberRateLimiter(settings.rate_limit_per_minute)
        return cls(settings, engine, store, limiter, asyncio.Semaphore(settings.max_concurrent_answers))


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    """The shared services of the running application."""
    return context.bot_data[SERVICES_KEY]


# --- members ----------------------------------------------------------------------------------


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Welcome: what the bot knows, and the medical disclaimer."""
    await update.effective_message.reply_html(formatting.WELCOME, link_preview_options=NO_PREVIEW)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """How to ask, in private chats and in groups."""
    await update.effective_message.reply_html(formatting.HELP, link_preview_options=NO_PREVIEW)


async def ask(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """``/ask QUESTION``: works in any chat, the way to ask in a group."""
    # Everything after the command itself, newlines kept (context.args would split on them).
    parts = update.effective_message.text.split(maxsplit=1)
    await answer_question(update, context, parts[1] if len(parts) == 2 else "")


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A text message: a question in private chats; in groups only when the bot is addressed."""
    question = addressed_question(update.effective_message, context.bot.username, context.bot.id)
    if question is not None:
        await answer_question(update, context, question)


async def on_not_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Stickers, photos, voice, files...: a polite reply saying what the bot can do instead."""
    await update.effective_message.reply_text(
        formatting.NOT_TEXT_REPLIES[message_kind(update.effective_message)]
    )


async def on_unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A command the bot does not know (private chats only): point to /help."""
    await update.effective_message.reply_text("I do not know that command. Send /help to see what I can do.")


def message_kind(message: Message) -> str:
    """Which NOT_TEXT_REPLIES entry fits a non-text message."""
    for kind in ("sticker", "photo", "voice", "audio", "video", "document"):
        if getattr(message, kind):
            return kind
    return "other"


def addressed_question(message: Message, bot_username: str, bot_id: int) -> str | None:
    """The question a text message asks the bot, or None when it is not meant for the bot.

    Args:
        message: an incoming text message.
        bot_username: the bot's @username (without the @).
        bot_id: the bot's user id.

    Returns:
        The text in private chats; in groups, the text without the @mention when the bot is mentioned
        or replied to; None otherwise.
    """
    text = message.text or ""
    if message.chat.type == ChatType.PRIVATE:
        return text
    mention = re.compile(rf"@{re.escape(bot_username)}\b", re.IGNORECASE)
    if mention.search(text):
        return " ".join(mention.sub(" ", text).split())
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        return text
    return None


async def keep_typing(bot: Bot, chat_id: int) -> None:
    """Renew "typing…" until cancelled: Telegram shows it for 5 s, a busy bot may need longer."""
    try:
        while True:
            await asyncio.sleep(TYPING_REFRESH_S)
            await bot.send_chat_action(chat_id, ChatAction.TYPING)
    except TelegramError as e:  # cosmetic: never worth failing the answer for
        logger.debug("typing action failed: %s", e)


async def answer_question(update: Update, context: ContextTypes.DEFAULT_TYPE, question: str) -> None:
    """Check the question, respect the rate limit, answer it off the event loop, log it, reply.

    Args:
        update: the update that asked.
        context: the handler context.
        question: the question text (may be empty or too long: the member gets told).
    """
    svc, message, member = services(context), update.effective_message, update.effective_user
    question = question.strip()
    if not question:
        await message.reply_html(formatting.EMPTY_QUESTION)
        return
    if len(question) > svc.settings.max_question_chars:
        limit = svc.settings.max_question_chars
        await message.reply_text(formatting.TOO_LONG.format(length=len(question), limit=limit))
        return
    wait = svc.limiter.wait_time(member.id)
    if wait > 0:
        await message.reply_text(formatting.RATE_LIMITED.format(seconds=math.ceil(wait)))
        return
    await context.bot.send_chat_action(message.chat_id, ChatAction.TYPING)
    typing = asyncio.create_task(keep_typing(context.bot, message.chat_id))
    try:
        async with svc.inference:
            answer = await asyncio.to_thread(svc.engine.answer, question)
    finally:
        typing.cancel()
    question_id = await _logged_question(svc.store, member.id, question, answer, message.chat.type)
    # Without a logged question there is nothing to vote on: no buttons.
    keyboard = None
    if question_id is not None:
        keyboard = formatting.feedback_keyboard(question_id, key=svc.store.callback_key)
    await message.reply_html(
        formatting.format_answer(answer), reply_markup=keyboard, link_preview_options=NO_PREVIEW
    )


async def _logged_question(
    store: Store, member_id: int, question: str, answer: Answer, chat_type: str | None
) -> int | None:
    """Log a question; None when the database fails (full disk, made read-only): the member still
    gets the answer computed for them, the failure goes to the log."""
    try:
        return await asyncio.to_thread(store.log_question, member_id, question, answer, chat_type)
    except (sqlite3.Error, OSError) as e:
        logger.error("could not log a question in %s: %s", store.path, e)
        return None


async def on_feedback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A feedback button: record the vote, always answer the callback, tick the chosen button."""
    query = update.callback_query
    store = services(context).store
    vote = formatting.decode_feedback(query.data, key=store.callback_key)
    recorded = False
    try:
        if vote is not None:
            recorded = await asyncio.to_thread(
                store.record_feedback, vote.question_id, query.from_user.id, vote.helpful
            )
    except (sqlite3.Error, OSError) as e:  # the member is told the vote was not recorded
        logger.error("could not record a vote in %s: %s", store.path, e)
    finally:
        # Telegram shows a spinner on the button until the query is answered, whatever happened.
        await query.answer(formatting.VOTE_THANKS if recorded else formatting.VOTE_UNKNOWN)
    if recorded and query.message is not None:
        try:
            await query.edit_message_reply_markup(
                formatting.feedback_keyboard(vote.question_id, vote.helpful, key=store.callback_key)
            )
        except BadRequest as e:  # the same vote twice: "message is not modified" is fine
            logger.debug("feedback markup unchanged: %s", e)


# --- admins -----------------------------------------------------------------------------------


async def _allowed(update: Update, context: ContextTypes.DEFAULT_TYPE, command: str) -> bool:
    """True for admins; anyone else is refused, and every attempt is logged."""
    svc, member = services(context), update.effective_user
    allowed = member is not None and member.id in svc.settings.admin_ids
    if not allowed:
        logger.warning("refused /%s to a non-admin", command)
        if member is not None:
            await asyncio.to_thread(svc.store.log_admin, member.id, command, False)
        await update.effective_message.reply_text(formatting.NOT_ADMIN.format(command=command))
    return allowed


async def _run_admin(
    update: Update, context: ContextTypes.DEFAULT_TYPE, command: str, work: Callable[[], str]
) -> None:
    """Run an admin command's blocking ``work`` in a thread, reply with its outcome, log it."""
    if not await _allowed(update, context, command):
        return
    svc, member = services(context), update.effective_user
    await context.bot.send_chat_action(update.effective_chat.id, ChatAction.TYPING)
    try:
        outcome = await asyncio.to_thread(work)
    except Exception as e:  # an admin needs the reason (missing folder, broken model), not an apology
        logger.exception("/%s failed", command)
        outcome = f"/{command} failed: {e}"
    await asyncio.to_thread(svc.store.log_admin, member.id, command, True, outcome)
    await update.effective_message.reply_text(outcome)


async def reindex(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins: rebuild the index from HELPLINE_DOCS_DIR and serve it."""
    engine, docs = services(context).engine, services(context).settings.docs_dir

    def work() -> str:
        report = engine.reindex(docs)
        return (
            f"Reindexed {docs}: {report.documents} documents, {report.passages} passages, "
            f"{len(report.skipped)} files skipped, {report.seconds:.1f} s."
        )

    await _run_admin(update, context, "reindex", work)


async def reload(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins: serve the newest model from HELPLINE_MODEL_DIR (and reload the index)."""
    svc = services(context)

    def work() -> str:
        svc.engine.reload()
        engine = svc.engine
        return f"Reloaded: now serving the model in {engine.model_dir} and the index in {engine.index_dir}."

    await _run_admin(update, context, "reload", work)


async def stats(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins: questions, answered share, feedback and median latency, today and all time."""
    if not await _allowed(update, context, "stats"):
        return
    svc = services(context)
    text = formatting.format_stats(await asyncio.to_thread(svc.store.stats))
    await asyncio.to_thread(svc.store.log_admin, update.effective_user.id, "stats", True)
    await update.effective_message.reply_html(text)


# --- errors -----------------------------------------------------------------------------------


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log any handler error with its traceback and apologise to the member."""
    logger.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, formatting.APOLOGY)
        except TelegramError as e:  # Telegram itself may be what failed
            logger.warning("could not send the apology: %s", e)
