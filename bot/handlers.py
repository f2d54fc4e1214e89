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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import formatting, uploads
from bot.answer import Timings
from bot.config import Settings
from bot.engine import Answer, AnswerEngine
from bot.faq import FaqMatch, FaqMatcher, parse_faq_add
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
    faq: FaqMatcher | None = None

    @classmethod
    def create(
        cls, settings: Settings, engine: AnswerEngine, store: Store, faq_encoder: Any = None
    ) -> Services:
        """Services with the rate limit and inference bound taken from ``settings``.

        Args:
            settings: the bot's settings.
            engine: the answer engine.
            store: the store.
            faq_encoder: the FAQ's sentence encoder (tests pass a fake); default the engine's own
                encoder (hybrid/dense), else all-MiniLM-L6-v2 loaded on first need.
        """
        limiter = MemberRateLimiter(settings.rate_limit_per_minute)

        def encoder() -> Any:
            if faq_encoder is not None:
                return faq_encoder
            if engine.encoder is not None:
                return engine.encoder
            from retrieval import SentenceEncoder  # noqa: PLC0415 - torch, only once the FAQ has entries

            return SentenceEncoder(settings.encoder_dir, num_threads=settings.reader_threads or None)

        faq = FaqMatcher(store.faq_entries, encoder, settings.faq_threshold)
        return cls(settings, engine, store, limiter, asyncio.Semaphore(settings.max_concurrent_answers), faq)

    @property
    def handoff(self) -> bool:
        """Whether declined questions can be handed to volunteers (a volunteers' chat is set, and the
        question text is kept: a ticket is made from it)."""
        return self.settings.volunteer_chat_id is not None and self.settings.store_question_text


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
        match = await _faq_match(svc, question)
        if match is None:
            async with svc.inference:
                answer = await asyncio.to_thread(svc.engine.answer, question)
    finally:
        typing.cancel()
    if match is not None:
        await _reply_from_faq(svc, message, member.id, question, match)
        return
    question_id = await _logged_question(svc.store, member.id, question, answer, message.chat.type)
    # Without a logged question there is nothing to vote on: no buttons.
    keyboard = None
    if question_id is not None:
        volunteer = svc.handoff and not answer.answered
        keyboard = formatting.feedback_keyboard(question_id, key=svc.store.callback_key, volunteer=volunteer)
    await message.reply_html(
        formatting.format_answer(answer), reply_markup=keyboard, link_preview_options=NO_PREVIEW
    )


async def _faq_match(svc: Services, question: str) -> FaqMatch | None:
    """The group's FAQ entry for the question, if one is close enough; None also when matching fails
    (the documents still answer; the failure goes to the log)."""
    if svc.faq is None:
        return None
    try:
        return await asyncio.to_thread(svc.faq.match, question)
    except Exception:  # an FAQ problem (encoder, database) must not cost the member the documents' answer
        logger.exception("FAQ matching failed; answering from the documents")
        return None


async def _reply_from_faq(
    svc: Services, message: Message, member_id: int, question: str, match: FaqMatch
) -> None:
    """Answer with the FAQ entry, logged as answered (from the FAQ), with the feedback buttons."""
    answer = Answer(
        match.entry.answer, match.similarity, None, None, None, None, None, Timings(0.0, 0.0, 0.0)
    )
    question_id = await _logged_question(
        svc.store, member_id, question, answer, message.chat.type, faq_id=match.entry.id
    )
    keyboard = None
    if question_id is not None:
        keyboard = formatting.feedback_keyboard(question_id, key=svc.store.callback_key)
    await message.reply_text(formatting.format_faq_answer(match), reply_markup=keyboard)


async def _logged_question(
    store: Store,
    member_id: int,
    question: str,
    answer: Answer,
    chat_type: str | None,
    faq_id: int | None = None,
) -> int | None:
    """Log a question; None when the database fails (full disk, made read-only): the member still
    gets the answer computed for them, the failure goes to the log."""
    try:
        return await asyncio.to_thread(store.log_question, member_id, question, answer, chat_type, faq_id)
    except (sqlite3.Error, OSError) as e:
        logger.error("could not log a question in %s: %s", store.path, e)
        return None


async def on_feedback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A feedback button: record the vote, always answer the callback, tick the chosen button."""
    query = update.callback_query
    svc = services(context)
    store = svc.store
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
        # "Not helpful" offers a volunteer; a declined answer keeps the offer whatever the vote.
        volunteer = svc.handoff and (not vote.helpful or _offers_volunteer(query.message))
        try:
            await query.edit_message_reply_markup(
                formatting.feedback_keyboard(
                    vote.question_id, vote.helpful, key=store.callback_key, volunteer=volunteer
                )
            )
        except BadRequest as e:  # the same vote twice: "message is not modified" is fine
            logger.debug("feedback markup unchanged: %s", e)


def _offers_volunteer(message: Any) -> bool:
    """Whether a bot message's keyboard has the "Ask a volunteer" button."""
    markup = getattr(message, "reply_markup", None)
    rows = markup.inline_keyboard if markup is not None else ()
    return any(
        (button.callback_data or "").startswith(formatting.VOLUNTEER_PREFIX + ":")
        for row in rows
        for button in row
    )


# --- volunteers -------------------------------------------------------------------------------


async def on_ask_volunteer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The "Ask a volunteer" button: open a ticket, post it (no member identity) to the volunteers."""
    query, svc = update.callback_query, services(context)
    question_id = formatting.decode_volunteer(query.data, key=svc.store.callback_key)
    notice: str | None = formatting.TICKET_UNKNOWN
    alert = False
    try:
        if question_id is not None and svc.handoff:
            notice, alert = await _open_ticket(context, svc, query, question_id)
    except (sqlite3.Error, OSError) as e:
        logger.error("could not open a ticket in %s: %s", svc.store.path, e)
        notice, alert = formatting.TICKET_FAILED, True
    finally:
        await query.answer(notice, show_alert=alert)


async def _open_ticket(
    context: ContextTypes.DEFAULT_TYPE, svc: Services, query: Any, question_id: int
) -> tuple[str | None, bool]:
    """Open and post the ticket, tell the member; returns the callback answer (text, as an alert)."""
    message = query.message
    chat_id = message.chat.id if message is not None else query.from_user.id
    message_id = message.message_id if message is not None else None
    request = await asyncio.to_thread(
        svc.store.open_ticket,
        question_id,
        query.from_user.id,
        chat_id,
        message_id,
        svc.settings.max_open_tickets,
    )
    if request.outcome == "unknown":
        return formatting.TICKET_UNKNOWN, False
    if request.outcome == "limit":
        return formatting.TICKET_LIMIT.format(limit=svc.settings.max_open_tickets), True
    if request.outcome == "exists":
        return formatting.TICKET_EXISTS.format(id=request.ticket.id), False
    ticket = request.ticket
    try:
        posted = await context.bot.send_message(
            svc.settings.volunteer_chat_id, formatting.format_ticket(ticket), link_preview_options=NO_PREVIEW,
        )  # fmt: skip
    except TelegramError as e:
        logger.error("could not post ticket #%d to the volunteers' chat: %s", ticket.id, e)
        await asyncio.to_thread(svc.store.delete_ticket, ticket.id)
        return formatting.TICKET_FAILED, True
    await asyncio.to_thread(svc.store.set_ticket_message, ticket.id, posted.chat_id, posted.message_id)
    logger.info("ticket #%d posted to the volunteers", ticket.id)
    opened = formatting.TICKET_OPENED.format(id=ticket.id)
    try:
        await context.bot.send_message(chat_id, opened, reply_parameters=_reply_to(message_id))
    except TelegramError as e:  # the ticket is posted; the member still learns it from the callback answer
        logger.warning("could not confirm ticket #%d to the member: %s", ticket.id, e)
        return opened, True
    return None, False


def _reply_to(message_id: int | None) -> ReplyParameters | None:
    """Reply to ``message_id`` when it still exists, else send a plain message."""
    if message_id is None:
        return None
    return ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def on_volunteer_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A reply in the volunteers' chat: to a ticket, it goes to the member (the first reply wins);
    to anything else, it is ignored."""
    svc, message = services(context), update.effective_message
    replied = message.reply_to_message
    if replied.from_user is not None and replied.from_user.id != context.bot.id:
        await on_text(update, context)  # volunteers talking among themselves (or asking with a mention)
        return
    ticket = await asyncio.to_thread(svc.store.ticket_for_message, message.chat_id, replied.message_id)
    if ticket is None:
        return  # a reply to one of the bot's confirmations or notes, not to a ticket: ignored
    if not message.text:  # a photo, a sticker, a voice note: nothing the member can be sent as text
        await message.reply_text(formatting.TICKET_TEXT_ONLY.format(id=ticket.id))
        return
    claimed = await asyncio.to_thread(svc.store.answer_ticket, ticket.id, message.text)
    if claimed is None:
        current = await asyncio.to_thread(svc.store.ticket_for_message, message.chat_id, replied.message_id)
        note = (
            formatting.TICKET_WAS_CLOSED if current.status == "closed" else formatting.TICKET_ALREADY_ANSWERED
        )
        await message.reply_text(note.format(id=ticket.id))
        return
    relayed = formatting.VOLUNTEER_ANSWER.format(question=claimed.question, answer=message.text)
    try:
        await context.bot.send_message(
            claimed.member_chat_id, relayed[: formatting.MAX_MESSAGE_CHARS],
            reply_parameters=_reply_to(claimed.member_message_id),
        )  # fmt: skip
    except TelegramError as e:
        logger.warning("could not deliver the answer to ticket #%d: %s", ticket.id, e)
        await message.reply_text(formatting.TICKET_UNDELIVERED.format(id=ticket.id, error=e))
        return
    logger.info("ticket #%d answered and delivered", ticket.id)
    await message.reply_text(formatting.TICKET_SENT.format(id=ticket.id))


async def tickets(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins and the volunteers' chat: close tickets older than the set age, list the open ones."""
    svc, chat, member = services(context), update.effective_chat, update.effective_user
    in_volunteer_chat = (
        svc.settings.volunteer_chat_id is not None and chat.id == svc.settings.volunteer_chat_id
    )
    if not in_volunteer_chat and (member is None or member.id not in svc.settings.admin_ids):
        await update.effective_message.reply_text(formatting.TICKETS_REFUSED)
        return
    max_age = svc.settings.ticket_max_age_hours
    cutoff = datetime.now(UTC) - timedelta(hours=max_age)
    closed = await asyncio.to_thread(svc.store.close_tickets_older_than, cutoff)
    for ticket in closed:
        try:
            await context.bot.send_message(
                ticket.member_chat_id,
                formatting.TICKET_CLOSED_FOR_MEMBER.format(question=ticket.question, id=ticket.id),
                reply_parameters=_reply_to(ticket.member_message_id),
            )
        except TelegramError as e:
            logger.warning("could not tell the member of closed ticket #%d: %s", ticket.id, e)
    still_open = await asyncio.to_thread(svc.store.open_tickets)
    await update.effective_message.reply_text(formatting.format_open_tickets(still_open, closed, max_age))


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


async def faq(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Admins: ``/faq add QUESTION | ANSWER``, ``/faq list``, ``/faq remove NUMBER``."""
    svc, member = services(context), update.effective_user
    parts = (update.effective_message.text or "").split(maxsplit=2)
    action = parts[1].lower() if len(parts) > 1 else ""
    rest = parts[2] if len(parts) > 2 else ""

    def work() -> str:
        if action == "add":
            try:
                question, answer = parse_faq_add(rest)
                entry = svc.store.add_faq(question, answer, member.id)
            except ValueError as e:
                return f"Could not add to the FAQ: {e}."
            return f"Added FAQ entry {entry.id}: {entry.question}\n→ {entry.answer}"
        if action == "list":
            return formatting.format_faq_list(svc.store.faq_entries())
        if action == "remove":
            number = rest.strip()
            if not (number.isascii() and number.isdigit()):
                return f"Could not remove: {number or '(nothing)'!r} is not an entry number; see /faq list."
            removed = svc.store.remove_faq(int(number))
            if removed is None:
                return f"There is no FAQ entry {number}; see /faq list."
            return f"Removed FAQ entry {removed.id}: {removed.question}"
        return formatting.FAQ_USAGE

    await _run_admin(update, context, "faq", work)


async def on_document(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A document in a private chat: admins' documents are checked, saved and indexed; others refused."""
    svc, message, member = services(context), update.effective_message, update.effective_user
    if member is None or member.id not in svc.settings.admin_ids:
        logger.warning("refused a document upload from a non-admin")
        if member is not None:
            await asyncio.to_thread(svc.store.log_admin, member.id, "upload", False)
        await message.reply_text(formatting.UPLOAD_NOT_ADMIN)
        return
    await context.bot.send_chat_action(message.chat_id, ChatAction.TYPING)
    try:
        installed = await _receive_document(context, svc.settings, message)
    except uploads.UploadError as e:
        await asyncio.to_thread(svc.store.log_admin, member.id, "upload", True, str(e))
        await message.reply_text(str(e) if str(e).endswith(".") else f"{e}.")
        return
    docs = svc.settings.docs_dir
    try:
        report = await asyncio.to_thread(svc.engine.reindex, docs)
        outcome = _upload_report(installed, report)
    except Exception as e:  # the file is in place; the admin needs the reason the index did not take it
        logger.exception("reindex after an upload failed")
        outcome = f"Saved {installed.path.name}, but reindexing {docs} failed: {e}"
    await asyncio.to_thread(svc.store.log_admin, member.id, "upload", True, outcome)
    await message.reply_text(outcome)


async def _receive_document(
    context: ContextTypes.DEFAULT_TYPE, settings: Settings, message: Message
) -> uploads.InstalledDocument:
    """Check the document's name, type and size, download it beside its target, install it.

    Raises:
        uploads.UploadError: refused or failed; the message names the file.
    """
    document = message.document
    first_word = ((message.caption or "").split() or [""])[0].lower()
    replace = first_word.split("@")[0] == uploads.REPLACE_CAPTION  # "/replace" or "/replace@bot"
    name = uploads.safe_file_name(document.file_name)
    uploads.check_size(name, document.file_size, settings.max_upload_bytes)
    target = uploads.target_path(settings.docs_dir, name, replace)
    temp = uploads.temp_path(target)
    try:
        file = await context.bot.get_file(document.file_id)
        await file.download_to_drive(temp)
    except TelegramError as e:
        temp.unlink(missing_ok=True)
        raise uploads.UploadError(f"I could not download {name} from Telegram: {e}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return await asyncio.to_thread(
        uploads.install, temp, target, replace=replace, limit=settings.max_upload_bytes
    )


def _upload_report(installed: uploads.InstalledDocument, report: Any) -> str:
    """What an admin reads after an upload: the document, then the index report with skipped files."""
    verb = "Replaced" if installed.replaced else "Added"
    name = installed.path.name
    lines = [
        f"{verb} {name} (“{installed.title}”).",
        f"Reindexed: {report.documents} documents, {report.passages} passages, "
        f"{len(report.skipped)} files skipped, {report.seconds:.1f} s.",
    ]
    for skipped in report.skipped[:10]:
        lines.append(f"• skipped {skipped.path}: {skipped.reason}")
    if len(report.skipped) > 10:
        lines.append(f"• … and {len(report.skipped) - 10} more (retrieval index --json lists them)")
    dropped = sum(1 for d in getattr(report, "dropped", ()) if Path(d.doc_id).name == name)
    if dropped:
        lines.append(f"{dropped} blocks of {name} were left out as boilerplate (notices, link lists).")
    return "\n".join(lines)


# --- errors -----------------------------------------------------------------------------------


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log any handler error with its traceback and apologise to the member."""
    logger.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_chat is not None:
        try:
            await context.bot.send_message(update.effective_chat.id, formatting.APOLOGY)
        except TelegramError as e:  # Telegram itself may be what failed
            logger.warning("could not send the apology: %s", e)
