"""Fine-tune the query side of dense retrieval on our own question -> passage pairs.

The stock all-MiniLM-L6-v2 embeds passages well but was never shown members' questions ("my son has
T1D, can he play football?"). We train a copy of it as the *query* tower only, against the frozen
passage vectors the index already stores:

- each training question's positives are the index passages of its document that hold its whole
  answer span; every other passage of the training documents is a negative (the whole candidate set,
  not a batch: hard negatives come for free, and the candidate matrix is fixed, so a step only runs
  the short questions through the model);
- the loss is sentence-transformers' MultipleNegativesRankingLoss recipe (cross-entropy over cosines
  scaled by 20), with several positives summed. We write these lines ourselves because that library's
  losses run both towers on every step; none trains one tower against fixed vectors.

Because passages keep the stock model's vectors, an index, its reused vectors and every document
uploaded later need no re-embedding, and retraining the query tower never invalidates an index.

torch and transformers are imported when training starts (``import retrieval`` never loads them).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import random
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.encoder import QUERY_CARD, QueryEncoderCard, SentenceEncoder, mean_pool
from retrieval.errors import TrainingDataError
from retrieval.hybrid import HybridIndex
from retrieval.ingest import read_folder
from retrieval.store import load_index

logger = logging.getLogger(__name__)

StepProgress = Callable[[int, int, float], None]  # (step, steps, loss)


@dataclass(frozen=True)
class QueryEncoderConfig:
    """One training run of the query tower (the CLI's options; defaults defined here once).

    The defaults were measured with ``bench/tune_retrieval.py`` on diabetes dev (documents held out
    of training): see models/query-encoder/README.md.
    """

    data: tuple[Path, ...]
    index_dir: Path
    docs_dir: Path
    output: Path
    encoder_dir: Path | None = None  # the passage encoder (None: the packaged all-MiniLM-L6-v2)
    epochs: int = 3
    learning_rate: float = 5e-5
    batch_size: int = 32
    scale: float = 20.0  # logits = scale * cosine, as MultipleNegativesRankingLoss
    max_query_tokens: int = 64  # questions are short; longer ones are cut here
    seed: int = 13
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.data:
            raise TrainingDataError("give at least one --data file of training questions")
        for name in ("epochs", "batch_size", "max_query_tokens"):
            if getattr(self, name) < 1:
                raise TrainingDataError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.learning_rate < 1:
            raise TrainingDataError(f"learning_rate must be in (0, 1), got {self.learning_rate}")


@dataclass(frozen=True)
class LocatedQuestion:
    """An answerable question with its answer span in its document's normalised text."""

    text: str
    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class QueryEncoderReport:
    output: str
    passage_encoder: str
    questions: int  # answerable questions trained on
    skipped: int  # answerable questions whose answer no index passage holds whole
    candidates: int  # passages of the training documents (positives and negatives)
    steps: int
    final_loss: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def locate_questions(squad: dict[str, Any], source: str, texts: dict[str, str]) -> list[LocatedQuestion]:
    """Every answerable question of a SQuAD document, located in the normalised document texts.

    An article names its document with a ``doc`` key (as ``data/diabetes-qa`` and the console's
    export do); its paragraphs must occur verbatim in that document's normalised text.

    Args:
        squad: the parsed SQuAD document.
        source: its file name, for messages.
        texts: normalised text by document id.

    Raises:
        TrainingDataError: an article without ``doc``, a document not in the folder, or a paragraph not in
            its document (the message names the file and the article).
    """
    located = []
    for article in squad.get("data", []):
        doc_id = article.get("doc")
        if doc_id not in texts:
            raise TrainingDataError(
                f"{source}: article {article.get('title')!r} names document {doc_id!r}, which is not in "
                f"the documents folder"
            )
        text = texts[doc_id]
        for paragraph in article.get("paragraphs", []):
            offset = text.find(paragraph["context"])
            if offset < 0:
                raise TrainingDataError(f"{source}: a paragraph of {doc_id} is not in the document's text")
            for qa in paragraph.get("qas", []):
                if qa.get("is_impossible") or not qa.get("answers"):
                    continue
                answer = qa["answers"][0]
                start = offset + int(answer["answer_start"])
                located.append(LocatedQuestion(qa["question"], doc_id, start, start + len(answer["text"])))
    return located


def positive_rows(
    questions: Iterable[LocatedQuestion], passages: Sequence[Any], candidates: np.ndarray
) -> list[tuple[LocatedQuestion, tuple[int, ...]]]:
    """Each question with the candidate rows (indices into ``candidates``) that hold its whole answer;
    questions no passage holds are left out."""
    by_doc: dict[str, list[int]] = {}
    for row, passage_index in enumerate(candidates):
        by_doc.setdefault(passages[int(passage_index)].doc_id, []).append(row)
    pairs = []
    for q in questions:
        rows = tuple(
            row
            for row in by_doc.get(q.doc_id, [])
            if passages[int(candidates[row])].start <= q.start and q.end <= passages[int(candidates[row])].end
        )
        if rows:
            pairs.append((q, rows))
    return pairs


def multi_positive_loss(logits: Any, positives: Sequence[Sequence[int]]) -> Any:
    """Mean over questions of -log(total probability of its positive passages) under a softmax."""
    import torch  # noqa: PLC0415

    mask = torch.zeros_like(logits, dtype=torch.bool)
    for row, columns in enumerate(positives):
        mask[row, list(columns)] = True
    positive = torch.logsumexp(logits.masked_fill(~mask, float("-inf")), dim=1)
    return (torch.logsumexp(logits, dim=1) - positive).mean()


def train_query_encoder(
    config: QueryEncoderConfig, progress: StepProgress | None = None
) -> QueryEncoderReport:
    """Train the query tower and write it (fp16, with its card) to ``config.output`` atomically.

    Raises:
        TrainingDataError: bad data, an output that exists without ``overwrite``, or no usable question.
        EncoderError / IndexLoadError (retrieval): the index or the passage encoder is unusable.
    """
    import torch  # noqa: PLC0415 - heavy: only training needs it
    from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

    _check_output(config)
    began = time.perf_counter()
    encoder = SentenceEncoder(config.encoder_dir)
    index = load_index(config.index_dir, encoder)
    assert isinstance(index, HybridIndex)  # an encoder was given: load_index refuses an index without vectors
    texts = {d.doc_id: d.text for d in read_folder(config.docs_dir)[0]}
    questions = [q for path in config.data for q in locate_questions(read_squad(path), str(path), texts)]
    training_docs = {q.doc_id for q in questions}
    # Negatives come only from the training documents: a held-out document's passages must not be
    # pushed away from questions about it.
    candidates = np.array(
        [i for i, p in enumerate(index.passages) if p.doc_id in training_docs], dtype=np.int64
    )
    pairs = positive_rows(questions, index.passages, candidates)
    if not pairs:
        raise TrainingDataError(
            f"no answerable question of {', '.join(map(str, config.data))} is held by a passage"
        )
    spelled = [(index.bm25.synonyms.spell_out(q.text), rows) for q, rows in pairs]
    passage_vectors = torch.from_numpy(index.vectors[candidates]).float()

    order = random.Random(config.seed)  # the data order; the global generator is left alone
    torch.manual_seed(config.seed)
    tokenizer = AutoTokenizer.from_pretrained(encoder.model_dir)
    model = AutoModel.from_pretrained(encoder.model_dir, dtype=torch.float32)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    steps = config.epochs * -(-len(spelled) // config.batch_size)
    warmup = max(1, steps // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * max(0.0, 1 - step / steps)
    )
    step, loss_value = 0, float("nan")
    for _ in range(config.epochs):
        order.shuffle(spelled)
        for first in range(0, len(spelled), config.batch_size):
            batch = spelled[first : first + config.batch_size]
            encoded = tokenizer(
                [text for text, _ in batch], padding=True, truncation=True,
                max_length=config.max_query_tokens, return_tensors="pt",
            )  # fmt: skip
            queries = mean_pool(model(**encoded).last_hidden_state, encoded["attention_mask"])
            loss = multi_positive_loss(
                config.scale * queries @ passage_vectors.T, [rows for _, rows in batch]
            )
            loss.backward()
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            step, loss_value = step + 1, float(loss.item())
            if progress is not None:
                progress(step, steps, loss_value)

    card = QueryEncoderCard(encoder.model_id, len(pairs), tuple(str(path) for path in config.data))
    _save(model.eval(), tokenizer, card, config.output)
    return QueryEncoderReport(
        output=str(config.output),
        passage_encoder=encoder.model_id,
        questions=len(pairs),
        skipped=len(questions) - len(pairs),
        candidates=len(candidates),
        steps=steps,
        final_loss=round(loss_value, 4),
        seconds=round(time.perf_counter() - began, 1),
    )


def _check_output(config: QueryEncoderConfig) -> None:
    output = config.output
    if config.encoder_dir is not None and output.resolve() == Path(config.encoder_dir).resolve():
        raise TrainingDataError(
            f"--output {output} is the passage encoder itself; write the query encoder elsewhere"
        )
    if output.exists() and not config.overwrite:
        raise TrainingDataError(f"--output {output} exists; pass --overwrite to replace it")


def read_squad(path: Path) -> dict[str, Any]:
    """A SQuAD file (``.json`` or ``.json.gz``).

    Raises:
        TrainingDataError: it cannot be read or is not JSON (the message names it).
    """
    try:
        raw = path.read_bytes()
        return json.loads(gzip.decompress(raw) if path.name.endswith(".gz") else raw)
    except (OSError, ValueError) as error:
        raise TrainingDataError(f"{path}: cannot read it as SQuAD JSON ({error})") from None


def _save(model: Any, tokenizer: Any, card: QueryEncoderCard, output: Path) -> None:
    """Weights in fp16 (half the size; the encoder loads them as fp32), tokenizer and card, written to a
    hidden folder beside ``output`` and renamed into place, so a crash never leaves half a model."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{secrets.token_hex(6)}.tmp")
    try:
        model.half().save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / QUERY_CARD).write_text(json.dumps(card.to_json(), indent=2) + "\n", encoding="utf-8")
        old = output.with_name(f".{output.name}.old")
        if output.exists():  # --overwrite: POSIX cannot rename over a non-empty folder
            shutil.rmtree(old, ignore_errors=True)
            os.replace(output, old)
        os.replace(tmp, output)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        raise TrainingDataError(f"{output}: cannot write the query encoder ({error})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
