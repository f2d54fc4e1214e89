"""Shared-normalisation fine-tuning of the reader (Clark & Gardner 2018), from a trained reader.

The reader is trained per window: each passage's spans compete with that passage's "no answer" only,
so its scores do not compare across the passages the bot reads for one question. Here each training
item is a *group*, one question with several passages:

- an answerable diabetes question: its gold paragraph plus the top passages the bot's own hybrid
  retrieval returns for it that do not hold the answer (never a dev document, never the question's
  own document, whose other passages often answer it in other words);
- for one in five of those, the same question with no passage that answers it: its paragraph minus
  the answer sentences, plus the same retrieved passages;
- an unanswerable diabetes question: its paragraph alone (other documents may answer it);
- SQuAD replay against forgetting: a question with the best BM25 paragraphs of its own article that
  lack the answer (one in five: without its own paragraph, so no answer).

The loss is half the usual per-window loss (which keeps each passage's "no answer" score meaningful:
the engine's margin feature) and half a group loss: one softmax over every position of every window of
the group, whose target is the gold start (end) in the window that holds it, or, for a group with no
answer, any window's CLS.

Measured and not shipped (models/reader/README.md, "Tried, not shipped"): from the stage-5 reader it
raised diabetes dev F1 from 49.0 to 57.8, but fewer answers reached the confidence the bot asks, and the
member questions answered right fell from 26.2% to 18.9%. Kept so the experiment can be rerun and built
on (another loss weight, more passages per group).

Why a loop of our own and not ``transformers.Trainer``: a batch here is whole groups of windows and the
loss needs to know which window belongs to which group; Trainer would need its own sampler, collator
and ``compute_loss`` for that, more code than this loop, which has the same optimiser, schedule and
clipping as our Trainer runs.

    .venv/bin/python scripts/shared_norm.py groups --index var/index \
        --squad-train runs/split/squad-train.json --out runs/sn/groups.pkl
    .venv/bin/python scripts/shared_norm.py train --groups runs/sn/groups.pkl --base models/reader \
        --out runs/sn/reader
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from experiments import (  # noqa: E402
    adamw_with_warmup,
    optimiser_step,
    require,
    save_whole,
    seeded_batches,
    served_index,
    start_run,
    write_pickle,
)
from make_unanswerable import (  # noqa: E402
    article_indexes,
    holds_answer,
    is_retrieved_negative,
    without_answer_sentences,
)

from finetune.squad import SquadExample, load_squad  # noqa: E402

NEGATIVES = 2  # retrieved non-answer passages per question: a group is at most three passages
MAX_WINDOWS = 4  # windows kept per group (the answer's first): 96% of passages fit one window
NO_ANSWER_SHARE = 0.2  # answerable questions that also give a group without their answer
RETRIEVED = 10  # passages retrieved to find the negatives among
SQUAD_QUESTIONS = 700
CLS = 0  # the position of the CLS token, the "no answer" of a window

Group = list[SquadExample]


def _no_answer(example_id: str, title: str, context: str, question: str, kind: str) -> SquadExample:
    """An unanswerable example (``kind``: "retrieved" or "removed")."""
    return SquadExample(example_id, title, context, question, (), kind)


def _fail(message: str) -> NoReturn:
    raise SystemExit(f"shared_norm: {message}")


def diabetes_groups(index_dir: Path, train: Path, dev_docs: Path, seed: int) -> list[Group]:
    """Groups of the diabetes train questions, with the passages the bot's retrieval gives them."""
    index = served_index(index_dir)
    excluded = set(dev_docs.read_text(encoding="utf-8").split())
    rng = random.Random(seed)
    groups: list[Group] = []
    for example in load_squad([train]).examples:
        if not example.answers:
            groups.append([example])  # other documents may answer it: alone
            continue
        negatives = []
        for hit in index.search(example.question, top_k=RETRIEVED):
            p = hit.passage
            if not is_retrieved_negative(p, example, excluded):
                continue
            name = f"{example.id}-sn{len(negatives)}"
            negatives.append(_no_answer(name, p.title, p.text, example.question, "retrieved"))
        groups.append([example, *negatives[:NEGATIVES]])
        if rng.random() < NO_ANSWER_SHARE:
            removed = without_answer_sentences(example)
            head = [_no_answer(f"{example.id}-snr", example.title, removed, example.question, "removed")]
            groups.append((head if removed else []) + negatives[:NEGATIVES])
    return [g for g in groups if g]


def squad_groups(squad_train: Path, n_questions: int, seed: int) -> list[Group]:
    """Groups of sampled SQuAD questions with other paragraphs of their own article (BM25 order)."""
    from retrieval.tokenize import tokenize  # noqa: PLC0415

    examples = load_squad([squad_train]).examples
    by_article, bm25 = article_indexes(examples)
    answerable = [e for e in examples if e.answers]
    if len(answerable) < n_questions:
        _fail(f"{squad_train}: {len(answerable)} answerable questions, {n_questions} asked for")
    groups: list[Group] = []
    for i, e in enumerate(random.Random(seed).sample(answerable, n_questions)):
        golds = [a.text for a in e.answers]
        contexts = by_article[e.title]
        scores = bm25[e.title].get_scores(tokenize(e.question))
        ranked = [contexts[j] for j in np.argsort(-scores)]
        others = [c for c in ranked if c != e.context and not holds_answer(c, golds)][:NEGATIVES]
        negatives = [
            _no_answer(f"{e.id}-sn{k}", e.title, c, e.question, "retrieved") for k, c in enumerate(others)
        ]
        if i % round(1 / NO_ANSWER_SHARE) == 0:
            removed = without_answer_sentences(e)
            head = [_no_answer(f"{e.id}-snr", e.title, removed, e.question, "removed")] if removed else []
            groups.append(head + negatives)
        else:
            groups.append([e, *negatives])
    return [g for g in groups if g]


def tokenize_groups(tokenizer: Any, groups: Sequence[Group], settings: Any) -> list[list[Any]]:
    """Each group's labelled windows: those holding the answer first, then the others."""
    from finetune.features import prepare_train_features  # noqa: PLC0415

    out = []
    for group in groups:
        features = prepare_train_features(tokenizer, group, settings)
        ordered = [f for f in features if f.start_position] + [f for f in features if not f.start_position]
        out.append(ordered[:MAX_WINDOWS])
    return out


def group_loss(logits: Any, positions: Any, group_of: Any) -> Any:
    """Mean over groups of -log P(target), one softmax over all positions of a group's windows.

    The target of a group with an answer is the labelled position in every window that holds it; of a
    group without one, the CLS of any of its windows.
    """
    import torch  # noqa: PLC0415

    losses = []
    for g in torch.unique(group_of):
        rows = (group_of == g).nonzero(as_tuple=True)[0]
        everything = torch.logsumexp(logits[rows].flatten(), 0)
        hit = positions[rows] != CLS
        if hit.any():
            target = torch.logsumexp(logits[rows[hit], positions[rows][hit]], 0)
        else:
            target = torch.logsumexp(logits[rows, CLS], 0)
        losses.append(everything - target)
    return torch.stack(losses).mean()


def _batch_tensors(features: Sequence[Any]) -> dict[str, Any]:
    """Right-padded input tensors of a list of windows."""
    import torch  # noqa: PLC0415

    length = max(len(f.input_ids) for f in features)
    ids = torch.zeros((len(features), length), dtype=torch.long)
    types, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for r, f in enumerate(features):
        n = len(f.input_ids)
        ids[r, :n] = torch.from_numpy(f.input_ids.astype(np.int64))
        types[r, :n] = torch.from_numpy(f.token_type_ids.astype(np.int64))
        mask[r, :n] = 1
    return {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}


def train(args: argparse.Namespace) -> None:
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415, N812
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer  # noqa: PLC0415

    from finetune.reader_config import ReaderConfig  # noqa: PLC0415

    groups = start_run(
        args.groups, args.out, made_by="shared_norm.py groups", seed=args.seed, threads=args.threads
    )
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    windows = ReaderConfig.load(Path(args.base)).windows
    tokenized = tokenize_groups(tokenizer, groups, windows)
    n_windows = sum(len(t) for t in tokenized)
    print(f"{len(tokenized)} groups, {n_windows} windows", file=sys.stderr)
    model = AutoModelForQuestionAnswering.from_pretrained(args.base, dtype=torch.float32)
    model.train()
    batches = seeded_batches(len(tokenized), args.groups_per_batch, args.seed)
    optimizer, schedule = adamw_with_warmup(model, args.lr, len(batches))
    started, done = time.perf_counter(), 0
    for step, batch in enumerate(batches, 1):
        rows = [(g, f) for g in batch for f in tokenized[g]]
        inputs = _batch_tensors([f for _, f in rows])
        starts = torch.tensor([f.start_position for _, f in rows])
        ends = torch.tensor([f.end_position for _, f in rows])
        group_of = torch.tensor([g for g, _ in rows])
        out = model(**inputs)
        padding = inputs["attention_mask"] == 0
        start_logits = out.start_logits.masked_fill(padding, -1e4)
        end_logits = out.end_logits.masked_fill(padding, -1e4)
        window = (F.cross_entropy(start_logits, starts) + F.cross_entropy(end_logits, ends)) / 2
        shared = (group_loss(start_logits, starts, group_of) + group_loss(end_logits, ends, group_of)) / 2
        loss = (1 - args.shared_weight) * window + args.shared_weight * shared
        optimiser_step(loss, model, optimizer, schedule)
        done += len(rows)
        if step % 20 == 0 or step == len(batches):
            rate = done / (time.perf_counter() - started)
            print(
                f"step {step}/{len(batches)} loss {loss.item():.3f} (window {window.item():.3f} shared "
                f"{shared.item():.3f}) {rate:.1f} windows/s, {(n_windows - done) / rate / 60:.0f} min left",
                file=sys.stderr,
                flush=True,
            )
    save(model, tokenizer, Path(args.base), args.out)
    print(f"saved {args.out} after {time.perf_counter() - started:.0f} s", file=sys.stderr)


def save(model: Any, tokenizer: Any, base: Path, out: Path) -> None:
    """fp16 weights, tokenizer and reading settings into a temp folder, then renamed to ``out``."""

    def write(folder: Path) -> None:
        model.half().save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        shutil.copy(base / "reader_config.json", folder / "reader_config.json")

    save_whole(out, write)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("groups", help="write the training groups (a pickle of SquadExample lists)")
    g.add_argument("--index", type=Path, required=True, help="the bot's hybrid index of data/docs")
    g.add_argument("--train", type=Path, default=ROOT / "data/diabetes-qa/train.json")
    g.add_argument("--dev-docs", type=Path, default=ROOT / "data/diabetes-qa/dev_docs.txt")
    g.add_argument("--squad-train", type=Path, required=True, help="SQuAD train articles (never dev ones)")
    g.add_argument("--squad", type=int, default=SQUAD_QUESTIONS, help="SQuAD questions replayed")
    g.add_argument("--seed", type=int, default=13)
    g.add_argument("--out", type=Path, required=True)
    t = sub.add_parser("train", help="fine-tune a reader on the groups")
    t.add_argument("--groups", type=Path, required=True)
    t.add_argument("--base", default=str(ROOT / "models/reader"), help="the reader to start from")
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--groups-per-batch", type=int, default=8)
    t.add_argument("--shared-weight", type=float, default=0.5, help="weight of the group loss")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "train":
        train(args)
        return
    require("shared_norm", args.index, args.train, args.dev_docs, args.squad_train)
    groups = diabetes_groups(args.index, args.train, args.dev_docs, args.seed)
    groups += squad_groups(args.squad_train, args.squad, args.seed)
    write_pickle(args.out, groups)
    answerable = sum(1 for group in groups if any(e.answers for e in group))
    passages = sum(len(group) for group in groups)
    print(f"{len(groups)} groups ({answerable} with an answer), {passages} passages -> {args.out}")


if __name__ == "__main__":
    main()
