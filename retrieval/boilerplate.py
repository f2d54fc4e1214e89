"""Blocks of a document that answer nothing: publication notices, link lists, referrals, navigation.

Indexed, such blocks win retrieval for questions they cannot answer ("This publication is not
copyrighted" answered a question about donating blood) and fill the reader's window with link titles.
The rules below were written from what the bundled NIH documents (``data/docs``) actually contain: every
rule names the reason it reports, and ``retrieval index --json`` lists each dropped block with it, so an
admin can see what was left out and why.

Rules look at one block (a paragraph: text between blank lines) at a time. A block is dropped only when
the whole block is of one kind; a block that mixes content with, say, a "for more information" sentence
is kept, since its content may answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from retrieval.passages import split_sentences

_NOTICE = re.compile(
    r"not copyrighted|encourages? (?:people|you|users) to (?:share|copy)|provided as a service of"
    r"|NIH Publication No\.|all rights reserved",
    re.IGNORECASE,
)
# "These resources address the diagnosis or management of X: - Gene Review: ... - Genetic Testing ..."
_RESOURCE_INTRO = re.compile(
    r"^(?:These resources|Resources from|You might also find|You may also find|Learn more about|"
    r"Related (?:issues|topics|resources))",
    re.IGNORECASE,
)
_LINK_ITEM = re.compile(r"(?:^|\s)-\s+[^-]{2,100}?:\s")
# A sentence that only points to another publication. Addresses, phone numbers and web sites alone do
# not count: "where can I get help paying for insulin?" is answered by exactly such a sentence.
_REFERRAL = re.compile(
    r"^(?:For more information|More information|Additional information|To learn more|Learn more|"
    r"Read more|See also|For (?:additional|further) information|Go to |Find out more)",
    re.IGNORECASE,
)
# A phone number (7+ digits, maybe with separators): contact details answer "how do I reach X?".
_PHONE = re.compile(r"\d[\d\s().-]{5,}\d")
_NAVIGATION = re.compile(
    r"^(?:back to top|top of page|print(?: this page)?|share|email this page|skip to (?:main )?content|"
    r"next page|previous page|page \d+ of \d+|home|menu|related content)\W*$",
    re.IGNORECASE,
)
# Pronunciation respellings: "tri-GLIH-seh-ride", "DYE-uh-BEE-teez" (a capitalised stressed syllable
# joined by hyphens to others).
_PRONUNCIATION = re.compile(r"\b[a-z]*(?:-?[A-Z]{2,}-?[a-z]*)+-[a-zA-Z-]+\b")


@dataclass(frozen=True)
class Rule:
    """One kind of block that answers nothing."""

    reason: str
    matches: Callable[[str], bool]


def _is_notice(block: str) -> bool:
    return bool(_NOTICE.search(block)) and len(block.split()) <= 80


def _is_link_list(block: str) -> bool:
    items = len(_LINK_ITEM.findall(block))
    return bool(_RESOURCE_INTRO.match(block)) or items >= 3 and items * 12 >= len(block.split())


def _is_referral(block: str) -> bool:
    sentences = [block[s:e] for s, e in split_sentences(block)]
    return bool(sentences) and all(_REFERRAL.search(s) for s in sentences) and not _PHONE.search(block)


def _is_navigation(block: str) -> bool:
    return all(_NAVIGATION.match(line.strip()) for line in block.splitlines() if line.strip())


def _is_pronunciation_guide(block: str) -> bool:
    words = block.split()
    return len(_PRONUNCIATION.findall(block)) * 3 >= len(words) > 0


RULES: tuple[Rule, ...] = (
    Rule("publication notice", _is_notice),
    Rule("resource link list", _is_link_list),
    Rule("referral only", _is_referral),
    Rule("navigation", _is_navigation),
    Rule("pronunciation guide", _is_pronunciation_guide),
)

_BLOCK = re.compile(r"[^\n]+(?:\n(?!\n)[^\n]*)*")


def drop_reason(block: str) -> str | None:
    """The reason ``block`` answers nothing, or None to keep it."""
    stripped = block.strip()
    if not stripped:
        return None
    for rule in RULES:
        if rule.matches(stripped):
            return rule.reason
    return None


def content_segments(text: str) -> tuple[list[tuple[int, int]], list[tuple[int, int, str]]]:
    """Split a normalised document into the runs of blocks worth indexing and the blocks dropped.

    Args:
        text: the normalised document text (blocks separated by blank lines).

    Returns:
        ``(kept, dropped)``: character spans of runs of consecutive kept blocks (so chunking can still
        join neighbouring paragraphs), and ``(start, end, reason)`` of each dropped block.
    """
    kept: list[tuple[int, int]] = []
    dropped: list[tuple[int, int, str]] = []
    run_start: int | None = None
    run_end = 0
    for match in _BLOCK.finditer(text):
        reason = drop_reason(match.group())
        if reason is None:
            run_start = match.start() if run_start is None else run_start
            run_end = match.end()
            continue
        dropped.append((match.start(), match.end(), reason))
        if run_start is not None:
            kept.append((run_start, run_end))
            run_start = None
    if run_start is not None:
        kept.append((run_start, run_end))
    return kept, dropped
