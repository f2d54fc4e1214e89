"""Handler helpers on their own: the per-member rate limit, when a group message is meant for the bot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from telegram import Chat, Message, Sticker, User

from bot.handlers import MemberRateLimiter, addressed_question, message_kind

BOT = User(id=99, is_bot=True, first_name="Helpline", username="helpline_bot")
MEMBER = User(id=5, is_bot=False, first_name="Ann")
NOW = datetime(2026, 11, 26, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def message(text: str, chat_type: str = Chat.SUPERGROUP, reply_to: Message | None = None) -> Message:
    chat = Chat(id=-5 if chat_type != Chat.PRIVATE else 5, type=chat_type)
    return Message(1, NOW, chat, from_user=MEMBER, text=text, reply_to_message=reply_to)


def test_rate_limit_allows_n_per_window_then_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = MemberRateLimiter(3, window_s=60.0, clock=clock)
    assert [limiter.wait_time(1) for _ in range(3)] == [0.0, 0.0, 0.0]
    clock.now += 20
    assert limiter.wait_time(1) == pytest.approx(40.0)
    assert limiter.wait_time(2) == 0.0  # other members are not affected
    clock.now += 40.5
    assert limiter.wait_time(1) == 0.0  # the first question left the window


def test_refused_questions_do_not_count() -> None:
    clock = Clock()
    limiter = MemberRateLimiter(1, window_s=10.0, clock=clock)
    limiter.wait_time(1)
    for _ in range(5):
        clock.now += 1
        assert limiter.wait_time(1) > 0
    clock.now += 5.5
    assert limiter.wait_time(1) == 0.0


def test_the_rate_limiter_forgets_members_who_stopped_asking() -> None:
    clock = Clock()
    limiter = MemberRateLimiter(2, window_s=60.0, clock=clock)
    for member in range(1000):
        limiter.wait_time(member)
    assert limiter.tracked_members == 1000
    clock.now += 61
    assert limiter.wait_time(5000) == 0.0
    assert limiter.tracked_members == 1  # memory follows the members of the last window, not all ever seen
    clock.now += 30
    limiter.wait_time(5001)
    assert limiter.wait_time(5000) == 0.0 and limiter.wait_time(5000) > 0  # the limit itself is unchanged


def test_private_messages_are_always_questions() -> None:
    assert (
        addressed_question(message("What is MODY?", Chat.PRIVATE), "helpline_bot", BOT.id) == "What is MODY?"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@helpline_bot what is MODY?", "what is MODY?"),
        ("what is MODY, @Helpline_Bot?", "what is MODY, ?"),
        ("what is MODY?", None),
        ("@helpline_bot_fan what is MODY?", None),
    ],
)
def test_group_messages_need_a_mention(text: str, expected: str | None) -> None:
    assert addressed_question(message(text), "helpline_bot", BOT.id) == expected


def test_group_replies_to_the_bot_are_questions() -> None:
    bots_answer = Message(2, NOW, Chat(-5, Chat.SUPERGROUP), from_user=BOT, text="An answer")
    members_post = Message(3, NOW, Chat(-5, Chat.SUPERGROUP), from_user=MEMBER, text="Hi all")
    assert (
        addressed_question(message("and MODY 2?", reply_to=bots_answer), "helpline_bot", BOT.id)
        == "and MODY 2?"
    )
    assert addressed_question(message("me too", reply_to=members_post), "helpline_bot", BOT.id) is None


def test_message_kind() -> None:
    sticker = Sticker("f", "u", 512, 512, False, False, Sticker.REGULAR)
    assert message_kind(Message(1, NOW, Chat(5, Chat.PRIVATE), sticker=sticker)) == "sticker"
    assert message_kind(Message(1, NOW, Chat(5, Chat.PRIVATE))) == "other"
