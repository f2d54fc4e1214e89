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
from bot.faq import FaqEntry, FaqMatch
from bot.store import Stats, Ticket

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
VOLUNTEER_PREFIX = "tk"
# How much of the passage the bot found a ticket shows the volunteers.
TICKET_SNIPPET_CHARS = 500
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
    "• Tap 👍 or 👎 under an answer: it helps the team improve me.\n"
    "• When I cannot help, 🙋 <i>Ask a volunteer</i> (if your group has volunteers) passes your question "
    "to the group's volunteers without your name, and I bring you their answer.\n\n"
    "<b>Commands</b>\n/start: welcome\n/help: this message\n/ask QUESTION: ask in a group\n\n" + DISCLAIMER
)
# A member's document (admins' are added to the documents: bot.uploads).
UPLOAD_NOT_ADMIN = (
    "Sorry, I cannot take files from you: only the group's admins can add documents to what I know. "
    "If you have a question, please type it as a message."
)
NOT_TEXT_REPLIES = {
    "sticker": "Nice sticker! 🙂 I can only answer questions written as text, though.",
    "photo": "I cannot look at photos. Please describe your question in words.",
    "voice": "I cannot listen to voice messages yet. Please type your question.",
    "audio": "I cannot listen to audio. Please type your question.",
    "video": "I cannot watch videos. Please type your question.",
    "document": UPLOAD_NOT_ADMIN,
    "other": "I can only answer questions written as text. Please type your question.",
}
EMPTY_QUESTION = "Please write a question, for example: <code>/ask What is brittle diabetes?</code>"
TOO_LONG = "That message is too long for me ({length} characters). Please ask in at most {limit} characters."
RATE_LIMITED = "You are asking faster than I can keep up 🙂 Please wait {seconds} seconds and ask again."
NOT_ADMIN = "Sorry, only the group's admins can use /{command}."
APOLOGY = "Sorry, something went wrong on my side. Please try again in a moment."
VOTE_THANKS = "Thank you for your feedback!"
VOTE_UNKNOWN = "Sorry, I could not record that vote."

# --- volunteers ---
ASK_VOLUNTEER = "🙋 Ask a volunteer"
TICKET_OPENED = (
    "🙋 I have passed your question to the group's volunteers (ticket #{id}). They are people with "
    "lives of their own, so it may take a while; when one of them answers, I will send it to you here. "
    "They do not see your name."
)
TICKET_EXISTS = "Your question is already with the volunteers (ticket #{id})."
TICKET_LIMIT = (
    "You already have {limit} questions waiting for a volunteer. Please wait until one of them is "
    "answered, then ask again."
)
TICKET_UNKNOWN = "Sorry, I cannot pass that question on."
TICKET_FAILED = "Sorry, I could not reach the volunteers just now. Please try again in a little while."
VOLUNTEER_ANSWER = "💬 A volunteer answered your question “{question}”:\n\n{answer}"
TICKET_CLOSED_FOR_MEMBER = (
    "I am sorry: no volunteer could answer your question “{question}” (ticket #{id}) in time, so I have "
    "closed it. You are welcome to ask again, or to bring it to the next meeting."
)
TICKET_SENT = "✅ Sent to the member who asked #{id}. Thank you!"
TICKET_ALREADY_ANSWERED = (
    "#{id} was already answered by another volunteer, so your reply was not sent. Thank you all the same!"
)
TICKET_WAS_CLOSED = "#{id} was closed before your reply (it was too old), so your reply was not sent."
TICKET_UNDELIVERED = "⚠️ I could not deliver the answer to #{id} (the member may have blocked me): {error}"
TICKET_TEXT_ONLY = "Please answer #{id} with a text message: I can only pass text on to the member."
TICKETS_REFUSED = "Sorry, /tickets works for admins and in the volunteers' chat."

# --- the group's FAQ ---
FAQ_LABEL = "📌 From the group's FAQ"
FAQ_USAGE = (
    "Use:\n/faq add QUESTION | ANSWER\n/faq list\n/faq remove NUMBER\n\n"
    "For example: /faq add When do we meet? | Every second Tuesday at 7 pm."
)


@dataclass(frozen=True)
class FeedbackVote:
    """A decoded feedback button press."""

    question_id: int
    helpful: bool


def feedback_signature(question_id: int, key: bytes, prefix: str = FEEDBACK_PREFIX) -> str:
    """16 characters of HMAC-SHA256 over the question id: a client can send any callback data, so
    without it a member could vote on any other member's answer by guessing its id."""
    digest = hmac.new(key, f"{prefix}:{question_id}".encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:SIGNATURE_BYTES]).decode("ascii")


def encode_volunteer(question_id: int, *, key: bytes) -> str:
    """Callback data of "Ask a volunteer": ``tk:<question id>:<signature>`` (signed like votes)."""
    return f"{VOLUNTEER_PREFIX}:{question_id}:{feedback_signature(question_id, key, VOLUNTEER_PREFIX)}"


def decode_volunteer(data: str | None, *, key: bytes) -> int | None:
    """The question id of an "Ask a volunteer" press, None for anything malformed or forged."""
    if not data or len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        return None
    parts = data.split(":")
    if len(parts) != 3 or parts[0] != VOLUNTEER_PREFIX or not (parts[1].isascii() and parts[1].isdigit()):
        return None
    if not hmac.compare_digest(parts[2], feedback_signature(int(parts[1]), key, VOLUNTEER_PREFIX)):
        return None
    return int(parts[1])


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


def feedback_keyboard(
    question_id: int, chosen: bool | None = None, *, key: bytes, volunteer: bool = False
) -> InlineKeyboardMarkup:
    """The two feedback buttons; after a vote the chosen one is ticked (a member may change their mind).

    Args:
        question_id: the logged question.
        chosen: the member's vote, None before any.
        key: the secret the callback data is signed with.
        volunteer: add a second row with "Ask a volunteer".

    Returns:
        One row with "helpful" and "not helpful" (and the volunteer row).
    """
    helpful = ("✅ " if chosen is True else "👍 ") + "Helpful"
    unhelpful = ("✅ " if chosen is False else "👎 ") + "Not helpful"
    rows = [[
        InlineKeyboardButton(helpful, callback_data=encode_feedback(question_id, True, key=key)),
        InlineKeyboardButton(unhelpful, callback_data=encode_feedback(question_id, False, key=key)),
    ]]  # fmt: skip
    if volunteer:
        rows.append(
            [InlineKeyboardButton(ASK_VOLUNTEER, callback_data=encode_volunteer(question_id, key=key))]
        )
    return InlineKeyboardMarkup(rows)


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
    return _with_quote(head, answer.quote, source_line(answer.title, answer.source), limit)


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
    """``/stats`` as HTML: one block for today (UTC), one for all time, then the FAQ and tickets."""
    blocks = []
    for name, period in (("Today (UTC)", stats.today), ("All time", stats.all_time)):
        latency = f"{period.median_latency_ms:.0f} ms" if period.median_latency_ms is not None else "n/a"
        blocks.append(
            f"<b>{name}</b>\nQuestions: {period.questions}\n"
            f"Answered: {period.answered} ({period.answered_share:.0%})\n"
            f"Helpful: {period.helpful} · Not helpful: {period.not_helpful}\n"
            f"Median latency: {latency}\n"
            f"From the FAQ: {period.from_faq} · Handed to volunteers: {period.tickets}"
        )
    blocks.append(
        f"<b>Now</b>\nFAQ entries: {stats.faq_entries}\n"
        f"Volunteer tickets: {stats.open_tickets} open, {stats.answered_tickets} answered"
    )
    return "\n\n".join(blocks)


def format_faq_answer(match: FaqMatch, limit: int = MAX_MESSAGE_CHARS) -> str:
    """An FAQ answer as plain text (the admin's words exactly, no markup to escape), labelled as the
    group's own, not the documents'."""
    head = f"{FAQ_LABEL}\n({match.entry.question})\n\n"
    answer = match.entry.answer
    if len(head) + len(answer) > limit:
        answer = answer[: limit - len(head) - len(ELLIPSIS)].rstrip() + ELLIPSIS
    return head + answer


def format_faq_list(entries: list[FaqEntry], limit: int = MAX_MESSAGE_CHARS) -> str:
    """``/faq list`` as plain text: number, question, answer; cut (saying how many more) to fit."""
    if not entries:
        return "The FAQ is empty. Add an entry with /faq add QUESTION | ANSWER"
    lines, used = [f"The group's FAQ ({len(entries)} entries):"], 0
    for shown, entry in enumerate(entries):
        line = f"{entry.id}. {entry.question}\n   → {entry.answer}"
        more = f"… and {len(entries) - shown} more"
        if used + len(line) + len(more) + 200 > limit:
            lines.append(more)
            break
        lines.append(line)
        used += len(line) + 1
    return "\n".join(lines)


def format_ticket(ticket: Ticket, limit: int = MAX_MESSAGE_CHARS) -> str:
    """The ticket as the volunteers see it, plain text (the member's words exactly): ``#12: question``,
    then the passage the bot found. No name, username or id of the member: a volunteer who knows the
    member must not learn who asked."""
    question = (
        ticket.question
        if len(ticket.question) <= MAX_ANSWER_CHARS * 2
        else (ticket.question[: MAX_ANSWER_CHARS * 2].rstrip() + ELLIPSIS)
    )
    head = f"🙋 #{ticket.id}: {question}"
    tail = "Reply to this message to answer. The member stays anonymous; the first reply is sent to them."
    if not ticket.passage_text:
        return f"{head}\n\nThe documents had nothing on this.\n\n{tail}"
    title = (ticket.passage_title or "our documents")[:MAX_TITLE_CHARS]
    found = f"The closest passage the bot found ({title}), which did not answer it:"
    budget = min(TICKET_SNIPPET_CHARS, limit - len(head) - len(found) - len(tail) - 10)
    snippet = ticket.passage_text
    if len(snippet) > budget:
        snippet = snippet[: max(budget, 0)].rstrip() + ELLIPSIS
    return f"{head}\n\n{found}\n“{snippet}”\n\n{tail}"


def format_open_tickets(tickets: list[Ticket], closed: list[Ticket], max_age_hours: float) -> str:
    """``/tickets`` as plain text: what was closed as too old, then what is still open."""
    lines = []
    if closed:
        numbers = ", ".join(f"#{t.id}" for t in closed)
        lines.append(f"Closed {len(closed)} tickets older than {max_age_hours:g} h: {numbers}")
    if not tickets:
        lines.append("No open tickets.")
    else:
        lines.append(f"Open tickets ({len(tickets)}):")
        for ticket in tickets[:50]:
            question = ticket.question if len(ticket.question) <= 200 else ticket.question[:200] + ELLIPSIS
            lines.append(f"#{ticket.id} (opened {ticket.opened_at[:16].replace('T', ' ')} UTC): {question}")
    return "\n".join(lines)
