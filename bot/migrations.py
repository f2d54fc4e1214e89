"""Append-only schema migrations for the bot's SQLite store (the pattern of simonw/llm).

Each migration is a function ``mNNN_name(conn)`` registered with ``@migration``. ``migrate(conn)``
runs, in order, those not yet recorded in ``_migrations``. Never edit or reorder a released
migration: add a new one.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

logger = logging.getLogger(__name__)

# The database holds member data: owner-only (SQLite gives its -wal and -shm files the same mode).
PRIVATE_MODE = 0o600
# How long a writer waits for another process's lock (the bot and the console share the file).
BUSY_TIMEOUT_S = 5.0

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration."""
    MIGRATIONS.append(fn)
    return fn


def open_database(path: Path, lock: threading.Lock) -> sqlite3.Connection:
    """The bot's SQLite database at ``path`` (created owner-only when missing), migrated, in WAL mode.

    One connection is shared by threads under ``lock``; ``isolation_level=None`` because
    ``write_transaction`` issues BEGIN/COMMIT itself.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE))
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    with lock:
        migrate(conn)
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection, lock: threading.Lock) -> Iterator[sqlite3.Connection]:
    """One write transaction under ``lock``; rolled back on error."""
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations that ``conn``'s database has not seen yet, each in its own transaction.

    Args:
        conn: an open connection in autocommit mode (``isolation_level=None``), so that the explicit
            BEGIN/COMMIT here also covers DDL statements.

    Returns:
        The names of the migrations applied now (empty when the schema was current).
    """
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        # One transaction: the schema change and its record land together or not at all.
        conn.execute("BEGIN IMMEDIATE")
        try:
            fn(conn)
            conn.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                (fn.__name__, datetime.now(UTC).isoformat()),
            )
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        logger.info("applied migration %s", fn.__name__)
        applied.append(fn.__name__)
    return applied


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    """Questions, the passages retrieved for them, feedback, admin actions, and key/value metadata."""
    _run_statements(
        conn,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE questions (
            id INTEGER PRIMARY KEY,
            asked_at TEXT NOT NULL,           -- ISO 8601, UTC
            member TEXT NOT NULL,             -- keyed hash of the Telegram user id (or the id itself)
            chat_type TEXT,
            question TEXT,                    -- NULL when question text is not stored
            answer TEXT,                      -- NULL when the documents did not answer
            passage_id TEXT,                  -- the answer's passage, or the one the reply pointed to
            span_start INTEGER,
            span_end INTEGER,
            confidence REAL NOT NULL,
            latency_ms REAL NOT NULL,
            retrieval_ms REAL,
            reading_ms REAL
        );
        CREATE INDEX questions_asked_at ON questions (asked_at);
        CREATE TABLE passages (               -- by content hash, so logged ids survive a reindex
            id TEXT PRIMARY KEY,
            doc_id TEXT NOT NULL,
            title TEXT NOT NULL,
            source TEXT,
            text TEXT NOT NULL
        );
        CREATE TABLE retrieved (              -- the reader's contexts for each question, best BM25 first
            question_id INTEGER NOT NULL REFERENCES questions (id),
            rank INTEGER NOT NULL,
            passage_id TEXT NOT NULL REFERENCES passages (id),
            bm25_score REAL NOT NULL,
            PRIMARY KEY (question_id, rank)
        );
        CREATE TABLE feedback (               -- one vote per member per question, the latest wins
            question_id INTEGER NOT NULL REFERENCES questions (id),
            member TEXT NOT NULL,
            helpful INTEGER NOT NULL,
            voted_at TEXT NOT NULL,
            PRIMARY KEY (question_id, member)
        );
        CREATE TABLE admin_actions (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            member TEXT NOT NULL,
            command TEXT NOT NULL,
            allowed INTEGER NOT NULL,
            detail TEXT
        );
        """,
    )


@migration
def m002_volunteer_tickets(conn: sqlite3.Connection) -> None:
    """Questions handed to the group's volunteers, and the reply that answered each.

    ``member_chat_id`` is the one place a member is identifiable: the chat the volunteer's reply must
    reach. It is never shown to volunteers, and it is set to NULL once the ticket is answered or closed.
    """
    _run_statements(
        conn,
        """
        CREATE TABLE tickets (
            id INTEGER PRIMARY KEY,           -- the ticket number volunteers see (#12)
            opened_at TEXT NOT NULL,          -- ISO 8601, UTC
            question_id INTEGER NOT NULL UNIQUE REFERENCES questions (id),
            member TEXT NOT NULL,             -- keyed hash of the member (for the open-ticket limit)
            member_chat_id INTEGER,           -- where the reply goes, NULL once answered or closed
            member_message_id INTEGER,        -- the bot's reply the member pressed the button under
            question TEXT NOT NULL,
            passage_id TEXT,                  -- the passage the bot found, if any
            volunteer_chat_id INTEGER,        -- the ticket message in the volunteers' chat
            volunteer_message_id INTEGER,
            status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'answered', 'closed')),
            answer TEXT,                      -- the volunteer's reply (first one wins)
            answered_at TEXT,
            closed_at TEXT
        );
        CREATE UNIQUE INDEX tickets_message ON tickets (volunteer_chat_id, volunteer_message_id);
        CREATE INDEX tickets_member_status ON tickets (member, status);
        """,
    )


@migration
def m003_faq(conn: sqlite3.Connection) -> None:
    """The group's own FAQ, and which questions it answered."""
    _run_statements(
        conn,
        """
        CREATE TABLE faq (
            id INTEGER PRIMARY KEY,           -- the number in /faq list and /faq remove
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            added_at TEXT NOT NULL,
            added_by TEXT NOT NULL            -- keyed hash of the admin
        );
        """,
    )
    # The FAQ entry that answered a question (NULL: the documents did, or nothing did). No comment in
    # the statement: SQLite splices an ADD COLUMN's text into the stored CREATE TABLE.
    conn.execute("ALTER TABLE questions ADD COLUMN faq_id INTEGER")


def _run_statements(conn: sqlite3.Connection, script: str) -> None:
    """Run ``;``-separated DDL one statement at a time (``executescript`` would commit mid-migration)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


@migration
def m004_console(conn: sqlite3.Connection) -> None:
    """The admin console's records: annotations over document snapshots, and reviews of members' feedback.

    An annotation's offsets index into the document text it was made on; that text is kept
    (``console_documents``, one row per content hash) so that an export still verifies after the
    document is edited or removed. A review records the admin's verdict on one question up for review.
    """
    _run_statements(
        conn,
        """
        CREATE TABLE console_documents (      -- the ingested text annotations were made on
            hash TEXT PRIMARY KEY,            -- SHA-256 of the file's bytes (retrieval.ingest.Document.hash)
            doc_id TEXT NOT NULL,
            title TEXT NOT NULL,
            source TEXT,
            text TEXT NOT NULL
        );
        CREATE TABLE annotations (
            id INTEGER PRIMARY KEY,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            doc_id TEXT NOT NULL,
            doc_hash TEXT NOT NULL REFERENCES console_documents (hash),
            question TEXT NOT NULL,
            answer_start INTEGER,             -- NULL when unanswerable
            answer_text TEXT                  -- text[answer_start:answer_start + len(answer_text)]
        );
        CREATE INDEX annotations_doc ON annotations (doc_id);
        CREATE TABLE feedback_reviews (
            question_id INTEGER PRIMARY KEY REFERENCES questions (id),
            reviewed_at TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('answer', 'not_in_documents', 'dismissed')),
            passage_id TEXT,                  -- the passage the answer is in (verdict 'answer')
            doc_id TEXT,
            title TEXT,
            context TEXT,                     -- that passage's text, which answer_start indexes into
            answer_start INTEGER,
            answer_text TEXT
        );
        """,
    )
