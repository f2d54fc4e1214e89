"""Write unanswerable training examples (SQuAD v2) so the reader learns to say "this passage does not answer".

A reader trained only on answerable questions always finds a span, so a wrong passage always yields a
confident wrong answer. The unanswerable examples made here pair real questions with contexts that look
relevant but lack the answer, the two ways a retriever fails:

- ``removed``: the question's own paragraph with every sentence that holds a gold answer taken out. On
  topic, same words, no answer: the nearest thing to SQuAD 2.0's adversarial questions that can be made
  automatically.
- ``retrieved``: the best BM25 match for the question among the *other* paragraphs (of the same SQuAD
  article, or of the bundled documents for diabetes questions) that contain no gold answer: exactly what
  the bot's retriever hands the reader when it misses.

A context is kept only when no gold answer text occurs in it (case-insensitive), so a label is never "no
answer" while the answer is in plain sight. Paraphrased answers elsewhere are possible and are the noise
this method accepts (see the model card).

Usage (``scripts/make_reader_v2.sh`` runs both):
    python scripts/make_unanswerable.py squad runs/split/squad-train.json --out runs/v2/squad-neg.json \
        --questions 4000 --seed 13
    python scripts/make_unanswerable.py docs data/diabetes-qa/train.json --docs data/docs \
        --exclude-docs data/diabetes-qa/dev_docs.txt --out runs/v2/diabetes-neg.json --seed 13

Every output passes ``finetune check`` with no rejections.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from pathlib import Path

from rank_bm25 import BM25Okapi

from finetune.atomic import write_json_atomic
from finetune.squad import SquadExample, load_squad
from retrieval import IndexSettings, Passage, build_index, load_index
from retrieval.passages import split_sentences
from retrieval.tokenize import tokenize

# A context shorter than this after removing the answer sentences has too little left to read.
MIN_REMAINING_WORDS = 25


@dataclass(frozen=True)
class Negative:
    """One unanswerable example: a question, a context without its answer, and how it was made."""

    id: str
    title: str
    question: str
    context: str
    kind: str  # "removed" or "retrieved"


def holds_answer(context: str, golds: Iterable[str]) -> bool:
    """True when any gold answer text occurs in ``context`` (case-insensitive)."""
    lowered = context.lower()
    return any(g.strip() and g.strip().lower() in lowered for g in golds)


def without_answer_sentences(example: SquadExample) -> str | None:
    """The example's context minus every sentence that overlaps a gold answer, or None if unusable."""
    spans = split_sentences(example.context)
    kept = [(s, e) for s, e in spans if not any(a.start < e and a.end > s for a in example.answers)]
    if len(kept) == len(spans) or not kept:
        return None
    context = " ".join(example.context[s:e] for s, e in kept)
    golds = [a.text for a in example.answers]
    if holds_answer(context, golds) or len(context.split()) < MIN_REMAINING_WORDS:
        return None
    return context


def best_other_context(
    question: str, golds: Sequence[str], candidates: Sequence[str], bm25: BM25Okapi, exclude: str
) -> str | None:
    """The highest-BM25 candidate context that is not ``exclude`` and holds no gold answer."""
    scores = bm25.get_scores(tokenize(question))
    for i in sorted(range(len(candidates)), key=lambda j: -scores[j]):
        if scores[i] <= 0:
            return None
        if candidates[i] != exclude and not holds_answer(candidates[i], golds):
            return candidates[i]
    return None


def article_indexes(examples: Sequence[SquadExample]) -> tuple[dict[str, list[str]], dict[str, BM25Okapi]]:
    """Each article's distinct contexts, in order, and a BM25 index over them."""
    by_article: dict[str, list[str]] = defaultdict(list)
    for example in examples:
        if example.context not in by_article[example.title]:
            by_article[example.title].append(example.context)
    indexes = {
        title: BM25Okapi([tokenize(c) or ["_"] for c in contexts]) for title, contexts in by_article.items()
    }
    return by_article, indexes


def is_retrieved_negative(passage: Passage, example: SquadExample, exclude_docs: Set[str]) -> bool:
    """Whether a retrieved passage may stand as "no answer" to ``example``: no gold answer text in it, not
    a dev document, and not the question's own document (its other passages often answer it in other
    words, a paraphrase the string test cannot see; the ``removed`` negative covers on-topic text)."""
    golds = [a.text for a in example.answers]
    same_document = passage.title == example.title
    return not (same_document or passage.doc_id in exclude_docs or holds_answer(passage.text, golds))


def squad_negatives(examples: Sequence[SquadExample], n_questions: int, seed: int) -> list[Negative]:
    """``removed`` and ``retrieved`` negatives for a seeded sample of answerable SQuAD questions."""
    by_article, indexes = article_indexes(examples)
    answerable = [e for e in examples if e.answers]
    sample = random.Random(seed).sample(answerable, min(n_questions, len(answerable)))
    negatives = []
    for i, example in enumerate(sample):
        golds = [a.text for a in example.answers]
        # Alternate the two kinds so each question gives one negative and both kinds are balanced.
        if i % 2 == 0:
            context = without_answer_sentences(example)
            kind = "removed"
        else:
            contexts = by_article[example.title]
            context = best_other_context(
                example.question, golds, contexts, indexes[example.title], example.context
            )
            kind = "retrieved"
        if context:
            negatives.append(
                Negative(f"{example.id}-neg-{kind}", example.title, example.question, context, kind)
            )
    return negatives


def docs_negatives(
    examples: Sequence[SquadExample], docs_dir: Path, exclude_docs: frozenset[str], per_question: int
) -> list[Negative]:
    """For each answerable question: its paragraph without the answer, and retrieved non-answer passages.

    Retrieval runs through the bot's own index of ``docs_dir`` (built in a temp folder), so the negatives
    are the passages the bot would really read; passages of ``exclude_docs`` (the dev documents) are never
    used, so no dev text is seen in training.
    """
    with tempfile.TemporaryDirectory() as tmp:
        build_index(docs_dir, Path(tmp) / "index", IndexSettings())
        index = load_index(Path(tmp) / "index")
        negatives = []
        for example in examples:
            if not example.answers:
                continue
            removed = without_answer_sentences(example)
            if removed:
                negatives.append(
                    Negative(f"{example.id}-neg-removed", example.title, example.question, removed, "removed")
                )
            taken = 0
            for rank, hit in enumerate(index.search(example.question, top_k=10)):
                if taken == per_question:
                    break
                passage = hit.passage
                if not is_retrieved_negative(passage, example, exclude_docs):
                    continue
                negatives.append(
                    Negative(
                        f"{example.id}-neg-r{rank}",
                        passage.title,
                        example.question,
                        passage.text,
                        "retrieved",
                    )
                )
                taken += 1
    return negatives


def to_squad_v2(negatives: Sequence[Negative]) -> dict:
    """A SQuAD v2.0 document: one article per title, one paragraph per negative."""
    articles: dict[str, list[dict]] = defaultdict(list)
    for n in negatives:
        articles[n.title].append(
            {
                "context": n.context,
                "qas": [{"id": n.id, "question": n.question, "answers": [], "is_impossible": True}],
            }
        )
    return {"version": "v2.0", "data": [{"title": t, "paragraphs": p} for t, p in articles.items()]}


def sample_paragraphs(document: dict, n: int, seed: int) -> dict:
    """A seeded sample of ``n`` of the document's paragraphs (each holds one negative), in order."""
    count = sum(len(a["paragraphs"]) for a in document["data"])
    keep = set(random.Random(seed).sample(range(count), min(n, count)))
    position, articles = 0, []
    for article in document["data"]:
        kept = []
        for paragraph in article["paragraphs"]:
            if position in keep:
                kept.append(paragraph)
            position += 1
        if kept:
            articles.append({**article, "paragraphs": kept})
    return {**document, "data": articles}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="source", required=True)
    squad = sub.add_parser("squad", help="negatives from the other paragraphs of each SQuAD article")
    squad.add_argument("data", type=Path)
    squad.add_argument("--questions", type=int, default=4000, help="answerable questions sampled")
    docs = sub.add_parser("docs", help="negatives from the bundled documents' index")
    docs.add_argument("data", type=Path)
    docs.add_argument("--docs", type=Path, required=True)
    docs.add_argument("--exclude-docs", type=Path, help="file of document names never used (dev documents)")
    docs.add_argument("--per-question", type=int, default=2, help="retrieved negatives per question")
    docs.add_argument("--sample", type=int, default=0, help="keep a seeded sample of N negatives (0: all)")
    for p in (squad, docs):
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)

    examples = load_squad([args.data]).examples
    if args.source == "squad":
        negatives = squad_negatives(examples, args.questions, args.seed)
    else:
        exclude = (
            frozenset(args.exclude_docs.read_text(encoding="utf-8").split())
            if args.exclude_docs
            else frozenset()
        )
        negatives = docs_negatives(examples, args.docs, exclude, args.per_question)
    document = to_squad_v2(negatives)
    if getattr(args, "sample", 0):
        document = sample_paragraphs(document, args.sample, args.seed)
    write_json_atomic(args.out, document)
    kinds = defaultdict(int)
    for n in negatives:
        kinds[n.kind] += 1
    print(json.dumps({"out": str(args.out), "negatives": len(negatives), **kinds}), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
