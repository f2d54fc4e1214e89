"""Members' questions about the documents the bot serves: how the served engine answers them (a report).

``data/diabetes-qa/test.json`` (built from ``data/diabetes-qa/test/*.jsonl``) holds 230 questions in
members' own words (24 that no document answers) about the 84 *train* documents, written after the
reader was trained and never trained on. ``bench/tune_engine.py`` measures on the dev documents, which
no training step saw; members ask about the documents the bot serves, whose paragraphs the reader has
seen with other questions, so this is the figure closer to what a member meets. The engine is the one
``bot ask`` serves (``HELPLINE_MODEL_DIR``, its ``calibration.json``, the index), nothing is fitted here:
the figures are out of sample for the calibration too.

Besides the served figures it says where the answers are lost: is the passage holding the gold answer
retrieved (rank 1, top k), does the reader get the answer right in it, and is its span there "an answer"
to the reader (it beats the passage's no-answer score).

Usage:
    .venv/bin/python bench/probe_member_questions.py [--index var/index] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from bot.calibration import coverage_of
from bot.config import Settings
from bot.engine import AnswerEngine
from bot.fusion import margin
from bot.tuning import Observed, chosen_answers, is_right, observe
from finetune.squad import load_squad

QUESTIONS = Path(__file__).resolve().parent.parent / "data" / "diabetes-qa" / "test.json"


def where_lost(observed: Sequence[Observed], k: int) -> dict[str, float]:
    """Shares of answerable questions: gold passage at rank 1 / in the top k; of those in the top k, the
    reader's best span there right, and that span beating the passage's no-answer score."""
    answerable = [q for q in observed if q.golds]
    found = rank_one = right = positive = 0
    for q in answerable:
        ranks = [i for i, sp in enumerate(q.retrieved[:k]) if any(g in sp.passage.text for g in q.golds)]
        if not ranks:
            continue
        found += 1
        rank_one += ranks[0] == 0
        reading = q.readings[ranks[0]]
        if reading.spans:
            right += is_right(reading.spans[0].text, q.golds)
            positive += margin(reading.spans[0], reading) > 0
    n = max(len(answerable), 1)
    return {
        "gold_passage_rank_1": rank_one / n,
        "gold_passage_in_top_k": found / n,
        "reader_right_on_gold_passage": right / max(found, 1),
        "reader_answers_on_gold_passage": positive / max(found, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, help="the index to ask (default: the bot's)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = Settings() if args.index is None else Settings(index_dir=args.index)
    engine = AnswerEngine.from_settings(settings)
    engine.warm_up()
    calibration = engine.calibration
    if calibration is None:
        parser.error("the served model has no calibration.json: fit one first (bot calibrate)")
    examples = load_squad([QUESTIONS]).examples
    observed = observe(engine, examples)
    k = calibration.top_k
    answers = chosen_answers(observed, k, calibration)
    outcomes = [outcome for outcome, _ in answers]
    served = coverage_of([given for _, given in answers], outcomes, calibration.threshold)
    report = {
        "questions": len(observed),
        "unanswerable": sum(not q.golds for q in observed),
        "k": k,
        "threshold": calibration.threshold,
        "direct_answers": sum(q.direct is not None for q in observed),
        "right": served.right,
        "precision": served.precision,
        "declined_unanswerable": served.declined_unanswerable,
        "right_answering_all": coverage_of([True] * len(outcomes), outcomes).right,
        **where_lost(observed, k),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(
        f"{report['questions']} member questions on the served documents ({report['unanswerable']} that no "
        f"document answers), k={k}, threshold {report['threshold']:.3f}, "
        f"{report['direct_answers']} answered directly"
    )
    print(
        f"  answered right {report['right']:.1%}, precision {report['precision']:.1%}, unanswerable "
        f"declined {report['declined_unanswerable']:.1%}; right if never declining "
        f"{report['right_answering_all']:.1%}"
    )
    print(
        f"  gold passage at rank 1 {report['gold_passage_rank_1']:.1%}, in the top {k} "
        f"{report['gold_passage_in_top_k']:.1%}; there, the reader is right "
        f"{report['reader_right_on_gold_passage']:.1%} and says 'an answer is here' "
        f"{report['reader_answers_on_gold_passage']:.1%}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
