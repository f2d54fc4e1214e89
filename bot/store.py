"""The bot's SQLite log: questions, answers, retrieved passages, feedback and admin actions.

Stdlib ``sqlite3`` in WAL mode (readers never block the writer), one connection shared by the event
loop's worker threads behind a lock. The schema lives in ``bot.migrations`` and is brought up to date
by ``Store.__init__``.

Privacy: member ids are stored as an HMAC-SHA256 of the Telegram user id under a secret key
(``HELPLINE_HASH_KEY``, or a random key generated once and kept in ``<database>.key``, mode 0600), so
votes can still be counted once per member without keeping who asked. The key never sits in the
database: anyone who could read both could re-identify members by hashing candidate ids. A new
database is created 0600 too. ``HELPLINE_HASH_MEMBER_IDS=false`` stores plain ids,
``HELPLINE_STORE_QUESTIONS=false`` keeps no question text.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.answer import Answer
from bot.faq import FaqEntry, normalise_question
from bot.migrations import PRIVATE_MODE, open_database, write_transaction

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger(__name__)

HASH_KEY_META = "member_hash_key"  # where earlier versions kept the generated key (moved out on open)
KEY_FILE_SUFFIX = ".key"


class KeyFileError(OSError):
    """The member-hash key file is unusable (an OSError, as any other unreadable storage file)."""


@dataclass(frozen=True)
class PeriodStats:
    """Counts over one period (today, or all time).

    Attributes:
        questions: questions asked.
        answered: questions the bot answered (the rest got "not in the documents").
        helpful: "helpful" votes on those questions.
        not_helpful: "not helpful" votes on those questions.
        median_latency_ms: median answer latency, None without questions.
        from_faq: of the answered questions, those the group's FAQ answered.
        tickets: questions handed to the volunteers.
    """

    questions: int
    answered: int
    helpful: int
    not_helpful: int
    median_latency_ms: float | None
    from_faq: int = 0
    tickets: int = 0

    @property
    def answered_share(self) -> float:
        """Answered questions as a share of all questions (0.0 without questions)."""
        return self.answered / self.questions if self.questions else 0.0


@dataclass(frozen=True)
class Stats:
    """What ``/stats`` reports (the FAQ and ticket counts are as of now)."""

    today: PeriodStats
    all_time: PeriodStats
    faq_entries: int = 0
    open_tickets: int = 0
    answered_tickets: int = 0


@dataclass(frozen=True)
class Ticket:
    """A question handed to the volunteers.

    Attributes:
        id: the ticket number volunteers see (``#12``).
        opened_at: ISO 8601 UTC time.
        question: the member's question.
        status: ``open``, ``answered`` or ``closed``.
        member_chat_id: where a reply goes (None once answered or closed).
        member_message_id: the bot's answer the member pressed "Ask a volunteer" under.
        volunteer_chat_id: the chat of the ticket message (None until it is posted).
        volunteer_message_id: the ticket message volunteers reply to.
        passage_title: the title of the passage the bot found, if any.
        passage_text: that passage's text.
        answer: the volunteer's reply, once answered.
    """

    id: int
    opened_at: str
    question: str
    status: str
    member_chat_id: int | None
    member_message_id: int | None
    volunteer_chat_id: int | None
    volunteer_message_id: int | None
    passage_title: str | None = None
    passage_text: str | None = None
    answer: str | None = None


@dataclass(frozen=True)
class TicketRequest:
    """What ``open_ticket`` did: ``ticket`` is set when ``outcome`` is ``opened`` or ``exists``.

    ``outcome`` is one of ``opened``, ``exists`` (this question already has a ticket), ``limit`` (the
    member has ``max_open`` open tickets) and ``unknown`` (no such question of this member's, or its
    text was not stored).
    """

    outcome: str
    ticket: Ticket | None = None


@dataclass(frozen=True)
class AnsweredTicket:
    """A volunteer's answer to a member's question: a candidate annotation for the admin console.

    Attributes:
        ticket_id: the ticket number.
        question_id: the logged question.
        question: the member's question.
        answer: the volunteer's reply.
        passage_id: the passage the bot had found (where an annotator would look first), if any.
        answered_at: ISO 8601 UTC time.
    """

    ticket_id: int
    question_id: int
    question: str
    answer: str
    passage_id: str | None
    answered_at: str


@dataclass(frozen=True)
class StoredPassage:
    """A passage as logged with a question (enough to rebuild the reader's context)."""

    id: str
    doc_id: str
    title: str
    source: str | None
    text: str
    bm25_score: float


@dataclass(frozen=True)
class ReviewItem:
    """A question worth an admin's correction: answered unhelpfully, or not answered.

    Attributes:
        question_id: the row id (also in the feedback buttons' callback data).
        asked_at: ISO 8601 UTC time.
        question: the question text.
        answer: the bot's answer, None when it did not answer.
        passage_id: the answer's passage (or the one the no-answer reply pointed to).
        span_start: the answer's offset in that passage, None without an answer.
        span_end: offset just past the answer, None without an answer.
        confidence: the engine's confidence.
        not_helpful_votes: how many members voted "not helpful".
        contexts: the retrieved passages, best BM25 first.
    """

    question_id: int
    asked_at: str
    question: str
    answer: str | None
    passage_id: str | None
    span_start: int | None
    span_end: int | None
    confidence: float
    not_helpful_votes: int
    contexts: tuple[StoredPassage, ...]


@dataclass(frozen=True)
class AdminAction:
    """One attempt at an admin command."""

    at: str
    member: str
    command: str
    allowed: bool
    detail: str | None


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """The bot's database. Thread-safe; every public method is one short transaction.

    Args:
        path: the SQLite file (created with its folder when missing).
        hash_member_ids: store member ids as a keyed hash instead of plain ids.
        store_question_text: keep the text of questions (off for privacy).
        member_hash_key: the key of that hash; None generates one, kept in a 0600 file beside the database.
        clock: returns the current UTC time (tests pass a fixed one).
    """

    def __init__(
        self,
        path: Path,
        *,
        hash_member_ids: bool,
        store_question_text: bool,
        member_hash_key: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ):
        self.path = Path(path)
        self._hash_ids = hash_member_ids
        self._keep_text = store_question_text
        self._clock = clock
        self._lock = threading.Lock()
        self._conn = open_database(self.path, self._lock)
        self._hash_key = (member_hash_key or self._kept_hash_key()).encode("utf-8")

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], datetime] = _utc_now) -> Store:
        """The store of the bot's settings: ``db_path`` and the privacy switches."""
        key = settings.member_hash_key.get_secret_value() if settings.member_hash_key else None
        return cls(
            settings.db_path,
            hash_member_ids=settings.hash_member_ids,
            store_question_text=settings.store_question_text,
            member_hash_key=key,
            clock=clock,
        )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self._conn, self._lock)

    @property
    def key_path(self) -> Path:
        """Where the generated member-hash key is kept (beside the database, mode 0600)."""
        return self.path.with_name(self.path.name + KEY_FILE_SUFFIX)

    def _kept_hash_key(self) -> str:
        """The generated member-hash key: read from ``key_path``, else moved there from the ``meta``
        table of an older database (so stored hashes still match), else created."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (HASH_KEY_META,)).fetchone()
        key = _read_or_create_key(self.key_path, row[0] if row else secrets.token_hex(32))
        if row:
            self._forget_legacy_key()
        return key

    def _forget_legacy_key(self) -> None:
        """Delete the key an older version kept in ``meta``, its bytes overwritten, WAL included."""
        logger.info("moved the member-hash key out of %s into %s", self.path, self.key_path)
        with self._lock:
            self._conn.execute("PRAGMA secure_delete = ON")
        with self._transaction() as conn:
            conn.execute("DELETE FROM meta WHERE key = ?", (HASH_KEY_META,))
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def callback_key(self) -> bytes:
        """The key that signs feedback buttons' callback data (derived: the member-hash key itself is
        never used for two purposes)."""
        return hmac.new(self._hash_key, b"telegram callback data", hashlib.sha256).digest()

    def member_key(self, member_id: int) -> str:
        """How a Telegram user id is stored: its keyed hash, or the id itself when hashing is off.

        Args:
            member_id: the Telegram user id.

        Returns:
            A hex HMAC-SHA256 (or the decimal id).
        """
        if not self._hash_ids:
            return str(member_id)
        return hmac.new(self._hash_key, str(member_id).encode("ascii"), hashlib.sha256).hexdigest()

    def _now(self) -> str:
        return self._clock().astimezone(UTC).isoformat(timespec="microseconds")

    def log_question(
        self,
        member_id: int,
        question: str,
        answer: Answer,
        chat_type: str | None = None,
        faq_id: int | None = None,
    ) -> int:
        """Record a question, the engine's answer and the passages it read.

        Args:
            member_id: the asker's Telegram user id (stored hashed unless hashing is off).
            question: the question text (not stored when question storage is off).
            answer: the engine's answer (or no-answer).
            chat_type: ``private``, ``group``, ``supergroup`` (None from the shell).
            faq_id: the FAQ entry that answered it (None: the documents did, or nothing did).

        Returns:
            The question's id, used in the feedback buttons.
        """
        span = answer.span
        row = (
            self._now(), self.member_key(member_id), chat_type, question if self._keep_text else None,
            answer.text, answer.passage.id if answer.passage else None,
            span.start if span else None, span.end if span else None, answer.confidence,
            answer.timings.total_ms, answer.timings.retrieval_ms, answer.timings.reading_ms, faq_id,
        )  # fmt: skip
        with self._transaction() as conn:
            cursor = conn.execute(
                "INSERT INTO questions (asked_at, member, chat_type, question, answer, passage_id,"
                " span_start, span_end, confidence, latency_ms, retrieval_ms, reading_ms, faq_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            question_id = int(cursor.lastrowid)
            self._log_retrieved(conn, question_id, answer)
        return question_id

    @staticmethod
    def _log_retrieved(conn: sqlite3.Connection, question_id: int, answer: Answer) -> None:
        """Keep the passages read for the question (texts once per content hash)."""
        for rank, scored in enumerate(answer.retrieved):
            p = scored.passage
            conn.execute(
                "INSERT OR IGNORE INTO passages (id, doc_id, title, source, text) VALUES (?, ?, ?, ?, ?)",
                (p.id, p.doc_id, p.title, p.source, p.text),
            )
            conn.execute(
                "INSERT INTO retrieved (question_id, rank, passage_id, bm25_score) VALUES (?, ?, ?, ?)",
                (question_id, rank, p.id, scored.score),
            )

    def record_feedback(self, question_id: int, member_id: int, helpful: bool) -> bool:
        """Record a member's vote on an answer; a second vote by the same member replaces the first.

        Args:
            question_id: the question the vote is about.
            member_id: the voter's Telegram user id.
            helpful: True for "helpful", False for "not helpful".

        Returns:
            False when there is no such question (e.g. an old button after the database was reset).
        """
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM questions WHERE id = ?", (question_id,)).fetchone() is None:
                return False
            conn.execute(
                "INSERT INTO feedback (question_id, member, helpful, voted_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (question_id, member) DO UPDATE SET helpful = excluded.helpful,"
                " voted_at = excluded.voted_at",
                (question_id, self.member_key(member_id), int(helpful), self._now()),
            )
        return True

    def log_admin(self, member_id: int, command: str, allowed: bool, detail: str | None = None) -> None:
        """Record an attempt at an admin command, allowed or refused.

        Args:
            member_id: who tried (stored like any member id).
            command: the command name, e.g. ``reindex``.
            allowed: whether the member is an admin.
            detail: the outcome, e.g. counts or the error.
        """
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO admin_actions (at, member, command, allowed, detail) VALUES (?, ?, ?, ?, ?)",
                (self._now(), self.member_key(member_id), command, int(allowed), detail),
            )

    def admin_actions(self, limit: int = 100) -> list[AdminAction]:
        """The latest admin command attempts, newest first.

        Args:
            limit: how many to return.

        Returns:
            The attempts.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT at, member, command, allowed, detail FROM admin_actions ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            AdminAction(at, member, command, bool(allowed), detail)
            for at, member, command, allowed, detail in rows
        ]

    def stats(self) -> Stats:
        """Questions, answered share, votes and median latency, for today (UTC) and all time.

        Returns:
            The two periods' counts.
        """
        midnight = self._clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with self._lock:
            today = self._period_stats(midnight.isoformat(timespec="microseconds"))
            all_time = self._period_stats("")
            (faq_entries,) = self._conn.execute("SELECT COUNT(*) FROM faq").fetchone()
            open_tickets, answered_tickets = self._conn.execute(
                "SELECT COALESCE(SUM(status = 'open'), 0), COALESCE(SUM(status = 'answered'), 0) FROM tickets"
            ).fetchone()
        return Stats(today, all_time, faq_entries, open_tickets, answered_tickets)

    def _period_stats(self, since: str) -> PeriodStats:
        """Counts over the questions asked at or after ``since`` (an ISO time; ``""`` for all)."""
        questions, answered, from_faq = self._conn.execute(
            "SELECT COUNT(*), COUNT(answer), COUNT(faq_id) FROM questions WHERE asked_at >= ?", (since,)
        ).fetchone()
        (tickets,) = self._conn.execute(
            "SELECT COUNT(*) FROM tickets WHERE opened_at >= ?", (since,)
        ).fetchone()
        helpful, not_helpful = self._conn.execute(
            "SELECT COALESCE(SUM(f.helpful), 0), COALESCE(SUM(1 - f.helpful), 0)"
            " FROM feedback f JOIN questions q ON q.id = f.question_id WHERE q.asked_at >= ?",
            (since,),
        ).fetchone()
        median = self._median_latency(since, questions)
        return PeriodStats(questions, answered, helpful, not_helpful, median, from_faq, tickets)

    def _median_latency(self, since: str, count: int) -> float | None:
        """The median of ``latency_ms`` over ``count`` rows, read in SQL (the middle one or two)."""
        if count == 0:
            return None
        middle = self._conn.execute(
            "SELECT latency_ms FROM questions WHERE asked_at >= ? ORDER BY latency_ms LIMIT ? OFFSET ?",
            (since, 2 - count % 2, (count - 1) // 2),
        ).fetchall()
        return sum(row[0] for row in middle) / len(middle)

    # --- volunteer tickets ----------------------------------------------------------------------

    _TICKET_COLUMNS = (
        "t.id, t.opened_at, t.question, t.status, t.member_chat_id, t.member_message_id,"
        " t.volunteer_chat_id, t.volunteer_message_id, p.title, p.text, t.answer"
    )

    def _ticket(self, conn: sqlite3.Connection, where: str, args: tuple) -> Ticket | None:
        row = conn.execute(
            f"SELECT {self._TICKET_COLUMNS} FROM tickets t LEFT JOIN passages p ON p.id = t.passage_id"
            f" WHERE {where}",
            args,
        ).fetchone()
        return Ticket(*row) if row else None

    def open_ticket(
        self, question_id: int, member_id: int, chat_id: int, message_id: int | None, max_open: int
    ) -> TicketRequest:
        """Open a ticket for a logged question, if it is this member's and within their open-ticket limit.

        Args:
            question_id: the question the member wants a volunteer to answer.
            member_id: who pressed the button (must be who asked).
            chat_id: where the volunteer's reply is to be delivered.
            message_id: the bot's answer the button was under (the reply quotes it).
            max_open: how many open tickets a member may have.

        Returns:
            The outcome, with the ticket when one was opened or already exists.
        """
        member = self.member_key(member_id)
        with self._transaction() as conn:
            row = conn.execute(
                "SELECT question, passage_id FROM questions WHERE id = ? AND member = ?",
                (question_id, member),
            ).fetchone()
            if row is None or row[0] is None:
                return TicketRequest("unknown")
            existing = self._ticket(conn, "t.question_id = ?", (question_id,))
            if existing is not None:
                return TicketRequest("exists", existing)
            (open_count,) = conn.execute(
                "SELECT COUNT(*) FROM tickets WHERE member = ? AND status = 'open'", (member,)
            ).fetchone()
            if open_count >= max_open:
                return TicketRequest("limit")
            cursor = conn.execute(
                "INSERT INTO tickets (opened_at, question_id, member, member_chat_id, member_message_id,"
                " question, passage_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._now(), question_id, member, chat_id, message_id, row[0], row[1]),
            )
            return TicketRequest("opened", self._ticket(conn, "t.id = ?", (cursor.lastrowid,)))

    def set_ticket_message(self, ticket_id: int, chat_id: int, message_id: int) -> None:
        """Remember the ticket's message in the volunteers' chat (the one they reply to)."""
        with self._transaction() as conn:
            conn.execute(
                "UPDATE tickets SET volunteer_chat_id = ?, volunteer_message_id = ? WHERE id = ?",
                (chat_id, message_id, ticket_id),
            )

    def delete_ticket(self, ticket_id: int) -> None:
        """Forget a ticket that could not be posted to the volunteers (the member may try again)."""
        with self._transaction() as conn:
            conn.execute("DELETE FROM tickets WHERE id = ?", (ticket_id,))

    def ticket_for_message(self, chat_id: int, message_id: int) -> Ticket | None:
        """The ticket whose message in the volunteers' chat is ``message_id`` (None: not a ticket)."""
        with self._lock:
            return self._ticket(
                self._conn, "t.volunteer_chat_id = ? AND t.volunteer_message_id = ?", (chat_id, message_id)
            )

    def answer_ticket(self, ticket_id: int, answer: str) -> Ticket | None:
        """Mark an open ticket answered with a volunteer's reply: the first reply wins.

        The member's chat id is returned in the ticket and forgotten in the database in the same
        transaction.

        Args:
            ticket_id: the ticket.
            answer: the volunteer's reply.

        Returns:
            The ticket as it was before (with the chat to deliver to), or None when it was not open.
        """
        with self._transaction() as conn:
            ticket = self._ticket(conn, "t.id = ? AND t.status = 'open'", (ticket_id,))
            if ticket is None:
                return None
            conn.execute(
                "UPDATE tickets SET status = 'answered', answer = ?, answered_at = ?, member_chat_id = NULL"
                " WHERE id = ?",
                (answer, self._now(), ticket_id),
            )
        return ticket

    def open_tickets(self) -> list[Ticket]:
        """Open tickets, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {self._TICKET_COLUMNS} FROM tickets t LEFT JOIN passages p ON p.id = t.passage_id"
                " WHERE t.status = 'open' ORDER BY t.id"
            ).fetchall()
        return [Ticket(*row) for row in rows]

    def close_tickets_older_than(self, cutoff: datetime) -> list[Ticket]:
        """Close the open tickets opened before ``cutoff`` (their members' chat ids are forgotten).

        Args:
            cutoff: an aware datetime.

        Returns:
            The tickets closed, as they were before (with the chat to tell), oldest first.
        """
        since = cutoff.astimezone(UTC).isoformat(timespec="microseconds")
        with self._transaction() as conn:
            rows = conn.execute(
                f"SELECT {self._TICKET_COLUMNS} FROM tickets t LEFT JOIN passages p ON p.id = t.passage_id"
                " WHERE t.status = 'open' AND t.opened_at < ? ORDER BY t.id",
                (since,),
            ).fetchall()
            conn.execute(
                "UPDATE tickets SET status = 'closed', closed_at = ?, member_chat_id = NULL"
                " WHERE status = 'open' AND opened_at < ?",
                (self._now(), since),
            )
        return [Ticket(*row) for row in rows]

    def answered_tickets(self, limit: int = 100) -> list[AnsweredTicket]:
        """Volunteers' answers, newest first: candidate annotations for the admin console.

        Args:
            limit: how many to return.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, question_id, question, answer, passage_id, answered_at FROM tickets"
                " WHERE status = 'answered' ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [AnsweredTicket(*row) for row in rows]

    # --- the group's FAQ ------------------------------------------------------------------------

    def add_faq(self, question: str, answer: str, admin_id: int) -> FaqEntry:
        """Add an FAQ entry.

        Args:
            question: the question as members might ask it.
            answer: the answer.
            admin_id: who added it (stored like any member id).

        Returns:
            The new entry.

        Raises:
            ValueError: an entry with the same question (ignoring case and punctuation) exists.
        """
        wanted = normalise_question(question)
        with self._transaction() as conn:
            for entry_id, existing in conn.execute("SELECT id, question FROM faq"):
                if normalise_question(existing) == wanted:
                    raise ValueError(f"FAQ entry {entry_id} already asks {existing!r}; remove it first")
            cursor = conn.execute(
                "INSERT INTO faq (question, answer, added_at, added_by) VALUES (?, ?, ?, ?)",
                (question, answer, self._now(), self.member_key(admin_id)),
            )
        return FaqEntry(int(cursor.lastrowid), question, answer)

    def faq_entries(self) -> list[FaqEntry]:
        """Every FAQ entry, in the order added."""
        with self._lock:
            rows = self._conn.execute("SELECT id, question, answer FROM faq ORDER BY id").fetchall()
        return [FaqEntry(*row) for row in rows]

    def remove_faq(self, entry_id: int) -> FaqEntry | None:
        """Remove an FAQ entry; None when there is no entry ``entry_id``."""
        with self._transaction() as conn:
            row = conn.execute("SELECT id, question, answer FROM faq WHERE id = ?", (entry_id,)).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM faq WHERE id = ?", (entry_id,))
        return FaqEntry(*row)

    def questions_for_review(self) -> list[ReviewItem]:
        """Questions voted "not helpful" by anyone, or left unanswered, with their contexts, oldest first.

        Questions stored without text are left out: there is nothing to annotate.

        Returns:
            The items, each with the passages the reader read.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT q.id, q.asked_at, q.question, q.answer, q.passage_id, q.span_start, q.span_end,"
                " q.confidence,"
                " (SELECT COUNT(*) FROM feedback f WHERE f.question_id = q.id AND f.helpful = 0) AS votes"
                " FROM questions q WHERE q.question IS NOT NULL AND (q.answer IS NULL OR votes > 0)"
                " ORDER BY q.id"
            ).fetchall()
            return [ReviewItem(*row, contexts=self._contexts(row[0])) for row in rows]

    def count_review_without_text(self, since: str = "") -> int:
        """How many questions would be up for review but were stored without their text (privacy).

        Args:
            since: only questions asked at or after this ISO UTC time (``""`` for all).

        Returns:
            The count (``bot export-feedback`` reports them as skipped).
        """
        with self._lock:
            (count,) = self._conn.execute(
                "SELECT COUNT(*) FROM questions q WHERE q.question IS NULL AND q.asked_at >= ? AND"
                " (q.answer IS NULL OR EXISTS (SELECT 1 FROM feedback f WHERE f.question_id = q.id"
                " AND f.helpful = 0))",
                (since,),
            ).fetchone()
        return int(count)

    def _contexts(self, question_id: int) -> tuple[StoredPassage, ...]:
        """The passages retrieved for a question, best BM25 first."""
        rows = self._conn.execute(
            "SELECT p.id, p.doc_id, p.title, p.source, p.text, r.bm25_score FROM retrieved r"
            " JOIN passages p ON p.id = r.passage_id WHERE r.question_id = ? ORDER BY r.rank",
            (question_id,),
        ).fetchall()
        return tuple(StoredPassage(*row) for row in rows)


def _read_or_create_key(path: Path, new_key: str) -> str:
    """The key in ``path``; when there is none, ``new_key``, written there first (mode 0600).

    Written to a temp file then hard-linked into place: never half-written, and when two processes
    start at once, the one whose link loses reads the winner's key.
    """
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(new_key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    try:
        key = path.read_text(encoding="ascii").strip()
    except UnicodeDecodeError:
        key = ""
    if not key:
        raise KeyFileError(f"the member-hash key file {path} is empty or garbled; restore it from a backup")
    return key
