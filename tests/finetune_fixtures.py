"""Helpers for the finetune tests: SQuAD documents, a tiny-vocabulary tokenizer, a tiny random BERT.

Nothing is downloaded: the tokenizer's vocabulary is built from the words the tests use (plus single
characters, so any text tokenizes), and the model is a 2-layer BertForQuestionAnswering with random
weights, saved to a temp dir like a ``finetune train`` output.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

CONTEXT_INSULIN = "Insulin is a hormone made by the pancreas. It lets glucose enter the cells of the body."
CONTEXT_A1C = "The A1C test measures average blood sugar over the past three months."
CONTEXT_FOOT = "People with diabetes should check their feet every day for cuts, blisters and swelling."


def squad_document(version: str = "1.1") -> dict[str, Any]:
    """A small valid SQuAD document: two articles, three paragraphs, five questions."""
    return {
        "version": version,
        "data": [
            {
                "title": "Insulin",
                "paragraphs": [
                    {
                        "context": CONTEXT_INSULIN,
                        "qas": [
                            {"id": "q1", "question": "What is insulin?",
                             "answers": [{"text": "a hormone", "answer_start": 11}]},
                            {"id": "q2", "question": "What makes insulin?",
                             "answers": [{"text": "the pancreas", "answer_start": 29},
                                         {"text": "pancreas", "answer_start": 33}]},
                        ],
                    }
                ],
            },
            {
                "title": "Care",
                "paragraphs": [
                    {
                        "context": CONTEXT_A1C,
                        "qas": [{"id": "q3", "question": "What does the A1C test measure?",
                                 "answers": [{"text": "average blood sugar", "answer_start": 22}]}],
                    },
                    {
                        "context": CONTEXT_FOOT,
                        "qas": [
                            {"id": "q4", "question": "How often should feet be checked?",
                             "answers": [{"text": "every day", "answer_start": 45}]},
                            {"id": "q5", "question": "What should be checked?",
                             "answers": [{"text": "their feet", "answer_start": 34}]},
                        ],
                    },
                ],
            },
        ],
    }  # fmt: skip


def write_json(path: Path, document: Any) -> Path:
    """Write ``document`` as JSON to ``path`` and return the path."""
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def tiny_vocab(extra_text: str = "") -> list[str]:
    """Special tokens, every character (alone and as a ``##`` piece) and the fixture texts' words."""
    words = set()
    for text in (
        CONTEXT_INSULIN,
        CONTEXT_A1C,
        CONTEXT_FOOT,
        extra_text,
        "what is insulin makes does the a1c test measure how often should feet be checked",
    ):
        words.update(text.lower().translate(str.maketrans("", "", string.punctuation)).split())
    chars = string.ascii_lowercase + string.digits + string.punctuation
    return SPECIAL_TOKENS + sorted(set(chars)) + [f"##{c}" for c in chars] + sorted(words - set(chars))


def make_tokenizer(extra_text: str = "") -> Any:
    """A fast WordPiece (BERT) tokenizer over ``tiny_vocab``."""
    from transformers import BertTokenizer

    vocab = {token: index for index, token in enumerate(tiny_vocab(extra_text))}
    return BertTokenizer(vocab=vocab)


def make_model_dir(path: Path, *, seed: int = 0, dtype: str = "float32") -> Path:
    """Save a tiny random BertForQuestionAnswering and its tokenizer to ``path``."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer.get_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=256,
    )
    model = BertForQuestionAnswering(config)
    if dtype == "float16":
        model = model.to(torch.float16)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def write_squad_file(folder: Path, name: str = "squad.json", version: str = "1.1") -> Path:
    """The fixture SQuAD document written to ``folder / name``."""
    return write_json(folder / name, squad_document(version))
