"""What members read: answers as Telegram HTML, fixed texts, the feedback keyboard and its callback data.

Telegram rejects messages over 4,096 characters (``MessageLimit.MAX_TEXT_LENGTH``), so every reply is
built from a fixed part (answer, link) and one flexible part (the quoted sentence or passage) that is
cut to fit, never the link. Everything that comes from documents or members is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import logging
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import InlineKeyboardButtonLimit, MessageLimit

from bot.answer import Answer
from bot.store import Stats

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = MessageLimit.MAX_TEXT_LENGTH
MAX_CALLBACK_BYTES = InlineKeyboardButtonLimit.MAX_CALLBACK_DATA
# Longest answer span and title shown; a reader span is normally far shorter (max_answer_tokens).
MAX_ANSWER_CHARS = 600
MAX_TITLE_CHARS = 200
# How much of the best passage a no-answer reply quotes.
NO_ANSWER_SNIPPET_CHARS = 350
ELLIPSIS = "…"
FEEDBACK_PREFIX = "fb"
# Bytes of the callback-data signature: 96 bits, 16 characters of base64.
SIGNATURE_BYTES = 12

DISCLAIMER = (
    "⚠️ I am not a doctor and this is not medical advice. In an emergency, call your local emergency "
    "services now."
)
WELCOME = (
    "👋 Hello! I am the helpline of our diabetes support group.\n\n"
    "Ask me a question in your own words, for example <i>What is brittle diabetes?</i>, and I will "
    "answer from the trusted documents our group has collected (NIH pages on diabetes and related "
    "conditions), with the sentence I found it in and a link to the source. When the documents do not "
    "answer, I say so.\n\n" + DISCLAIMER
)
HELP = (
    "<b>How to ask</b>\n"
    "• In a private chat, just write your question.\n"
    "• In a group, mention me, reply to one of my messages, or write <code>/ask your question</code>.\n"
    "• Tap 👍 or 👎 under an answer: it helps the team improve me.\n\n"
    "<b>Commands</b>\n/start: welcome\n/help: this message\n/ask QUESTION: ask in a group\n\n" + DISCLAIMER
)
NOT_TEXT_REPLIES = {
    "sticker": "Nice sticker! 🙂 I can only answer questions written as text, though.",
    "photo": "I cannot look at photos. Please describe your question in words.",
    "voice": "I cannot listen to voice messages yet. Please type your question.",
    "audio": "I cannot listen to audio. Please type your question.",
    "video": "I cannot watch videos. Please type your question.",
    "document": "I cannot read files you send me. Please copy the question into a message.",
    "other": "I can only answer questions written as text. Please type your question.",
}
EMPTY_QUESTION = "Please write a question, for example: <code>/ask What is brittle diabetes?</code>"
TOO_LONG = "That message is too long for me ({length} characters). Please ask in at most {limit} characters."
RATE_LIMITED = "You are asking faster than I can keep up 🙂 Please wait {seconds} seconds and ask again."
NOT_ADMIN = "Sorry, only the group's admins can use /{command}."
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
VOTE_THANKS = "Thank you for your feedback!"
VOTE_UNKNOWN = "Sorry, I could not record that vote."


@dataclass(frozen=True)
class FeedbackVote:
    """A decoded feedback button press."""

    question_id: int
    helpful: bool


def feedback_signature(question_id: int, key: bytes) -> str:
    """16 characters of HMAC-SHA256 over the question id: a client can send any callback data, so
    without it a member could vote on any other member's answer by guessing its id."""
    digest = hmac.new(key, f"{FEEDBACK_PREFIX}:{question_id}".encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:SIGNATURE_BYTES]).decode("ascii")


def encode_feedback(question_id: int, helpful: bool, *, key: bytes) -> str:
    """Callback data for a feedback button: ``fb:<question id>:<1|0>:<signature>`` (under 64 bytes).

    Args:
        question_id: the logged question.
        helpful: which button.
        key: the secret the signature is made with (``Store.callback_key``).
    """
    data = f"{FEEDBACK_PREFIX}:{question_id}:{int(helpful)}:{feedback_signature(question_id, key)}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data {data!r} is over {MAX_CALLBACK_BYTES} bytes")
    return data


def decode_feedback(data: str | None, *, key: bytes) -> FeedbackVote | None:
    """Parse callback data defensively: anything but exactly ``fb:<id>:<0|1>:<signature>``, with the
    right signature, gives None.

    Args:
        data: the ``callback_data`` Telegram sent back (clients can send anything).
        key: the secret the buttons were signed with.

    Returns:
        The vote, or None for malformed or forged data.
    """
    if not data or len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        return None
    parts = data.split(":")
    if len(parts) != 4 or parts[0] != FEEDBACK_PREFIX or parts[2] not in ("0", "1"):
        return None
    if not parts[1].isascii() or not parts[1].isdigit():
        return None
    if not hmac.compare_digest(parts[3], feedback_signature(int(parts[1]), key)):
        return None
    return FeedbackVote(int(parts[1]), parts[2] == "1")


def feedback_keyboard(question_id: int, chosen: bool | None = None, *, key: bytes) -> InlineKeyboardMarkup:
    """The two feedback buttons; after a vote the chosen one is ticked (a member may change their mind).

    Args:
        question_id: the logged question.
        chosen: the member's vote, None before any.
        key: the secret the callback data is signed with.

    Returns:
        One row with "helpful" and "not helpful".
    """
    helpful = ("✅ " if chosen is True else "👍 ") + "Helpful"
    unhelpful = ("✅ " if chosen is False else "👎 ") + "Not helpful"
    return InlineKeyboardMarkup(
        [[
            InlineKeyboardButton(helpful, callback_data=encode_feedback(question_id, True, key=key)),
            InlineKeyboardButton(unhelpful, callback_data=encode_feedback(question_id, False, key=key)),
        ]]
    )  # fmt: skip


def escape_within(text: str, budget: int) -> str:
    """HTML-escape ``text``, cutting it (with an ellipsis) so the escaped result fits ``budget`` chars.

    Args:
        text: raw text.
        budget: the most characters the escaped result may have.

    Returns:
        The escaped, possibly shortened text ('' when the budget cannot hold even the ellipsis).
    """
    escaped = html.escape(text, quote=False)
    if len(escaped) <= budget:
        return escaped
    if budget < len(ELLIPSIS):
        return ""
    low, high = 0, len(text)  # the longest raw prefix whose escaped form + ellipsis fits
    while low < high:
        mid = (low + high + 1) // 2
        if len(html.escape(text[:mid].rstrip(), quote=False)) + len(ELLIPSIS) <= budget:
            low = mid
        else:
            high = mid - 1
    return html.escape(text[:low].rstrip(), quote=False) + ELLIPSIS


def source_line(title: str | None, source: str | None) -> str:
    """``Source: <a href=…>title</a>``, or the bare title when the document names no URL."""
    name = escape_within(title or "our documents", MAX_TITLE_CHARS)
    if source:
        return f'📄 Source: <a href="{html.escape(source, quote=True)}">{name}</a>'
    return f"📄 Source: {name}"


def _with_quote(head: str, quote: str | None, tail: str, limit: int) -> str:
    """``head``, the quote in italics cut to what ``limit`` leaves, then ``tail``."""
    if not quote:
        return f"{head}\n\n{tail}"
    frame = f"{head}\n\n<i>“”</i>\n\n{tail}"
    body = escape_within(quote, limit - len(frame))
    return f"{head}\n\n<i>“{body}”</i>\n\n{tail}" if body else f"{head}\n\n{tail}"


def format_answer(answer: Answer, limit: int = MAX_MESSAGE_CHARS) -> str:
    """An answer as Telegram HTML: the span in bold, the sentence it came from, the source link.

    Args:
        answer: the engine's answer (answered or not).
        limit: the most characters the message may have.

    Returns:
        HTML no longer than ``limit`` characters.
    """
    if not answer.answered:
        return format_no_answer(answer, limit)
    head = f"<b>{escape_within(answer.text or '', MAX_ANSWER_CHARS)}</b>"
    return _with_quote(head, answer.sentence, source_line(answer.title, answer.source), limit)


def format_no_answer(answer: Answer, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The honest "not in the documents" reply, pointing to the best passage when there is one.

    Args:
        answer: an unanswered Answer.
        limit: the most characters the message may have.

    Returns:
        HTML no longer than ``limit`` characters.
    """
    head = "🤔 I could not find a clear answer to that in our documents."
    if answer.passage is None:
        return f"{head}\nPlease ask someone on the support team, or your doctor or nurse."
    snippet = answer.passage.text
    if len(snippet) > NO_ANSWER_SNIPPET_CHARS:
        snippet = snippet[:NO_ANSWER_SNIPPET_CHARS].rstrip() + ELLIPSIS
    head += " The closest passage I found may still help:"
    return _with_quote(head, snippet, source_line(answer.title, answer.source), limit)


def format_stats(stats: Stats) -> str:
    """``/stats`` as HTML: one block for today (UTC), one for all time."""
    blocks = []
    for name, period in (("Today (UTC)", stats.today), ("All time", stats.all_time)):
        latency = f"{period.median_latency_ms:.0f} ms" if period.median_latency_ms is not None else "n/a"
        blocks.append(
            f"<b>{name}</b>\nQuestions: {period.questions}\n"
            f"Answered: {period.answered} ({period.answered_share:.0%})\n"
            f"Helpful: {period.helpful} · Not helpful: {period.not_helpful}\n"
            f"Median latency: {latency}"
        )
    return "\n\n".join(blocks)
