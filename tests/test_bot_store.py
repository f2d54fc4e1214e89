"""The SQLite store: migrations, privacy, feedback, admin log, stats and the review query."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.answer import Answer, Timings
from bot.engine import AnswerEngine
from bot.migrations import MIGRATIONS, migrate
from bot.store import Store
from tests.bot_fakes import CORPUS, FakeIndex, FakeReader, FixedClock, make_settings

NOW = datetime(2026, 11, 26, 15, 30, tzinfo=UTC)
ANSWERED = "What is brittle diabetes characterized by?"
UNANSWERED = "Is brittle diabetes rare?"


@pytest.fixture
def engine(tmp_path: Path) -> AnswerEngine:
    return AnswerEngine.from_settings(make_settings(tmp_path), reader=FakeReader(), index=FakeIndex())


def make_store(tmp_path: Path, clock: FixedClock | None = None, **overrides) -> Store:
    return Store.from_settings(make_settings(tmp_path, **overrides), clock=clock or FixedClock(NOW))


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA table_info({table})")]


def with_latency(answer: Answer, ms: float) -> Answer:
    return Answer(**{**answer.__dict__, "timings": Timings(0.0, 0.0, ms)})


def test_blank_database_gets_the_full_schema_in_wal_mode(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    conn = sqlite3.connect(store.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert [r[0] for r in conn.execute("SELECT name FROM _migrations")] == [m.__name__ for m in MIGRATIONS]
    assert columns(conn, "feedback") == ["question_id", "member", "helpful", "voted_at"]
    assert columns(conn, "retrieved") == ["question_id", "rank", "passage_id", "bm25_score"]
    assert "latency_ms" in columns(conn, "questions")


def test_migrations_run_once(tmp_path: Path) -> None:
    make_store(tmp_path).close()
    conn = sqlite3.connect(make_settings(tmp_path).db_path, isolation_level=None)
    assert migrate(conn) == []


def test_member_ids_are_hashed_with_a_kept_key(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path)
    store.log_question(42, ANSWERED, engine.answer(ANSWERED))
    hashed = store.member_key(42)
    assert hashed != "42" and len(hashed) == 64
    assert hashed != store.member_key(43)
    store.close()
    assert make_store(tmp_path).member_key(42) == hashed  # same generated key after a restart
    assert make_store(tmp_path, member_hash_key="another-secret").member_key(42) != hashed
    row = sqlite3.connect(store.path).execute("SELECT member, question FROM questions").fetchone()
    assert row == (hashed, ANSWERED)


def _bytes_on_disk(store: Store) -> bytes:
    """The database with its WAL and shared-memory files, as anyone able to read them would see."""
    files = [store.path, *(store.path.with_name(store.path.name + s) for s in ("-wal", "-shm"))]
    return b"".join(f.read_bytes() for f in files if f.exists())


def test_the_hash_key_is_kept_out_of_the_database_which_is_private(
    tmp_path: Path, engine: AnswerEngine
) -> None:
    store = make_store(tmp_path)
    store.log_question(42, ANSWERED, engine.answer(ANSWERED))
    key = store.key_path.read_text().strip()
    assert len(key) == 64 and key.encode() not in _bytes_on_disk(store)
    assert store.member_key(42) == hmac.new(key.encode(), b"42", hashlib.sha256).hexdigest()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
    assert sqlite3.connect(store.path).execute("SELECT COUNT(*) FROM meta").fetchone() == (0,)


def test_a_key_an_older_version_kept_in_the_database_is_moved_out(
    tmp_path: Path, engine: AnswerEngine
) -> None:
    store = make_store(tmp_path)
    store.close()
    store.key_path.unlink()  # as an older version left it: the key in meta, no key file
    legacy = "9f" * 32
    with sqlite3.connect(store.path) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('member_hash_key', ?)", (legacy,))
    reopened = make_store(tmp_path)
    assert reopened.member_key(42) == hmac.new(legacy.encode(), b"42", hashlib.sha256).hexdigest()
    assert reopened.key_path.read_text().strip() == legacy
    reopened.log_question(42, ANSWERED, engine.answer(ANSWERED))
    assert legacy.encode() not in _bytes_on_disk(reopened)


def test_a_given_hash_key_writes_no_key_file(tmp_path: Path) -> None:
    store = make_store(tmp_path, member_hash_key="from-the-environment")
    assert not store.key_path.exists()


def test_privacy_switches_keep_plain_ids_and_drop_question_text(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path, hash_member_ids=False, store_question_text=False)
    store.log_question(42, ANSWERED, engine.answer(ANSWERED))
    row = sqlite3.connect(store.path).execute("SELECT member, question, answer FROM questions").fetchone()
    assert row == ("42", None, CORPUS[0][3])


def test_feedback_is_one_vote_per_member_latest_wins(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path)
    qid = store.log_question(1, ANSWERED, engine.answer(ANSWERED))
    assert store.record_feedback(qid, member_id=7, helpful=True)
    assert store.record_feedback(qid, member_id=7, helpful=False)
    assert store.record_feedback(qid, member_id=8, helpful=True)
    assert not store.record_feedback(qid + 100, member_id=7, helpful=True)
    stats = store.stats().all_time
    assert (stats.helpful, stats.not_helpful) == (1, 1)


def test_admin_attempts_are_logged_allowed_or_refused(tmp_path: Path) -> None:
    store = make_store(tmp_path, hash_member_ids=False)
    store.log_admin(5, "reindex", allowed=False)
    store.log_admin(1, "stats", allowed=True, detail="ok")
    actions = store.admin_actions()
    assert [(a.member, a.command, a.allowed, a.detail) for a in actions] == [
        ("1", "stats", True, "ok"),
        ("5", "reindex", False, None),
    ]


def test_stats_today_and_all_time(tmp_path: Path, engine: AnswerEngine) -> None:
    clock = FixedClock(NOW - timedelta(days=1))
    store = make_store(tmp_path, clock)
    store.log_question(1, UNANSWERED, with_latency(engine.answer(UNANSWERED), 100.0))
    clock.now = NOW
    first = store.log_question(1, ANSWERED, with_latency(engine.answer(ANSWERED), 10.0))
    store.log_question(2, ANSWERED, with_latency(engine.answer(ANSWERED), 30.0))
    store.record_feedback(first, 1, helpful=True)
    stats = store.stats()
    assert (stats.today.questions, stats.today.answered, stats.today.helpful) == (2, 2, 1)
    assert stats.today.median_latency_ms == pytest.approx(20.0)  # even count: mean of the middle two
    assert (stats.all_time.questions, stats.all_time.answered) == (3, 2)
    assert stats.all_time.answered_share == pytest.approx(2 / 3)
    assert stats.all_time.median_latency_ms == pytest.approx(30.0)


def test_empty_stats(tmp_path: Path) -> None:
    stats = make_store(tmp_path).stats()
    assert stats.all_time.questions == 0
    assert stats.all_time.median_latency_ms is None
    assert stats.today.answered_share == 0.0


def test_review_lists_unanswered_and_unhelpful_with_their_contexts(
    tmp_path: Path, engine: AnswerEngine
) -> None:
    store = make_store(tmp_path)
    liked = store.log_question(1, ANSWERED, engine.answer(ANSWERED))
    disliked = store.log_question(2, ANSWERED + " (again)", engine.answer(ANSWERED))
    unanswered = store.log_question(3, UNANSWERED, engine.answer(UNANSWERED))
    store.record_feedback(liked, 1, helpful=True)
    store.record_feedback(disliked, 2, helpful=False)
    items = store.questions_for_review()
    assert [i.question_id for i in items] == [disliked, unanswered]
    bad, none = items
    assert bad.answer == CORPUS[0][3] and bad.not_helpful_votes == 1
    assert bad.contexts[0].text == CORPUS[0][2]
    assert bad.contexts[0].text[bad.span_start : bad.span_end] == bad.answer
    assert none.answer is None and none.span_start is None
    assert none.contexts and none.passage_id == none.contexts[0].id


def test_review_skips_questions_stored_without_text(tmp_path: Path, engine: AnswerEngine) -> None:
    store = make_store(tmp_path, store_question_text=False)
    store.log_question(3, UNANSWERED, engine.answer(UNANSWERED))
    assert store.questions_for_review() == []


def test_tickets_and_faq_tables_and_an_upgrade_from_the_first_schema(
    tmp_path: Path, engine: AnswerEngine
) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    first = MIGRATIONS[0]
    conn.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    first(conn)
    conn.execute("INSERT INTO _migrations VALUES (?, ?)", (first.__name__, NOW.isoformat()))
    conn.execute(
        "INSERT INTO questions (asked_at, member, question, confidence, latency_ms)"
        " VALUES (?, 'm', 'q', 0, 1)",
        (NOW.isoformat(),),
    )
    conn.close()
    store = Store(path, hash_member_ids=True, store_question_text=True, clock=FixedClock(NOW))
    conn = sqlite3.connect(path)
    assert columns(conn, "questions")[-1] == "faq_id"
    assert "member_chat_id" in columns(conn, "tickets") and columns(conn, "faq")[:3] == [
        "id",
        "question",
        "answer",
    ]
    assert store.stats().all_time.questions == 1 and store.stats().all_time.from_faq == 0


def test_a_ticket_is_the_askers_within_the_limit_and_answered_once(
    tmp_path: Path, engine: AnswerEngine
) -> None:
    clock = FixedClock(NOW)
    store = make_store(tmp_path, clock)
    first = store.log_question(7, UNANSWERED, engine.answer(UNANSWERED), "private")
    second = store.log_question(
        7, "Does brittle diabetes hurt?", engine.answer("Does brittle diabetes hurt?")
    )
    assert store.open_ticket(first, 8, 8, None, max_open=1).outcome == "unknown"  # not the asker
    opened = store.open_ticket(first, 7, 7, 99, max_open=1)
    assert opened.outcome == "opened" and opened.ticket.question == UNANSWERED
    assert opened.ticket.passage_title == CORPUS[0][0]  # the passage the bot pointed to
    assert store.open_ticket(first, 7, 7, 99, max_open=1).outcome == "exists"
    assert store.open_ticket(second, 7, 7, 100, max_open=1).outcome == "limit"
    store.set_ticket_message(opened.ticket.id, -5, 500)
    assert store.ticket_for_message(-5, 500).id == opened.ticket.id
    assert store.ticket_for_message(-5, 501) is None
    claimed = store.answer_ticket(opened.ticket.id, "Yes")
    assert claimed.member_chat_id == 7 and store.answer_ticket(opened.ticket.id, "Again") is None
    assert store.ticket_for_message(-5, 500).member_chat_id is None  # forgotten once answered
    clock.now = NOW + timedelta(days=1)
    late = store.open_ticket(second, 7, 7, 100, max_open=1)
    assert late.outcome == "opened"
    clock.now = NOW + timedelta(days=5)
    [closed] = store.close_tickets_older_than(NOW + timedelta(days=2))
    assert closed.id == late.ticket.id and closed.member_chat_id == 7
    assert store.open_tickets() == [] and [t.answer for t in store.answered_tickets()] == ["Yes"]
    stats = store.stats()
    assert (stats.open_tickets, stats.answered_tickets, stats.all_time.tickets) == (0, 1, 2)


def test_faq_entries_add_list_remove(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    entry = store.add_faq("When do we meet?", "Tuesdays.", 1)
    with pytest.raises(ValueError, match="FAQ entry 1 already asks 'When do we meet"):
        store.add_faq("when do we MEET", "Mondays.", 1)
    assert store.faq_entries() == [entry]
    assert store.remove_faq(entry.id) == entry and store.remove_faq(entry.id) is None
    assert store.faq_entries() == [] and store.stats().faq_entries == 0
