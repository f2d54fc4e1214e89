"""The bot's one configuration object, read from the environment or a ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import ModelDirError
from bot.faq import TUNED_FAQ_THRESHOLD
from retrieval.encoder import NO_QUERY_ENCODER, query_encoder_setting
from retrieval.hybrid import HybridSettings

# The reader that ships in the repository; served when HELPLINE_MODEL_DIR is left at its default and
# that default holds no model yet.
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent.parent / "models" / "reader"
# The question side of dense retrieval, fine-tuned on data/diabetes-qa/train.json against the packaged
# all-MiniLM-L6-v2's passage vectors (retrieval train-query-encoder; figures in its README.md).
SHIPPED_QUERY_ENCODER_DIR = SHIPPED_MODEL_DIR.parent / "query-encoder"
# Passages read per question, from bench/tune_engine.py on data/diabetes-qa/dev.json and calib.json
# (880 questions, out of fold by document, threshold for 80% precision; shipped stage-6 reader, hybrid
# retrieval with the query encoder, direct answers counted, table cells as rows): answered right k=1
# 20.1%, k=3 23.6%, k=5 25.9%, k=8 23.6% (answering everything: 47.2 / 51.9 / 54.5 / 54.5%); k=1 and
# k=3 are not chosen (bot.tuning.MIN_CHOSEN_K). With the stage-5 reader k=5 led too (21.2% against 15.8%
# at k=8); on dev.json alone k=8 had led (28.7% against 25.5%), the calibration questions, about the
# documents the bot serves, reverse it.
TUNED_TOP_K = 5
# Weight of the retrieval score when a model has no calibration (the calibration ranks otherwise).
TUNED_RETRIEVAL_WEIGHT = 0.0
# How near the threshold an int8 reader's confidence must lie for the engine to re-read the passages of
# its two likeliest candidates on the fp32 export (whose answers are torch's). Measured offline on the
# readings of every backend (int8, fp32 ONNX, torch; k=5) with the stage-5 reader and its calibration
# (threshold 0.698): the engine's answer (or decline) was torch's for 94.4% of the 426 dev questions with
# int8 alone; re-reading at margin 0.03 gave 96.2%, 0.05 97.2%, 0.08 98.1% (17.6% of the questions
# re-read, 0.35 passages each on average), 0.10 98.4%; on the 229 member test questions 95.6% alone,
# 97.8% at 0.08. The stage-6 reader's figure end to end is in README.md (bench/check_backends.py).
TUNED_RECHECK_MARGIN = 0.08


class Settings(BaseSettings):
    """Everything the bot and ``bot ask`` need. Command-line options override these.

    Environment variables are named in each field's ``alias`` (see ARCHITECTURE.md).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- Telegram -------------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_base_url: str = Field("https://api.telegram.org/bot", alias="TELEGRAM_BASE_URL")
    # Where files are downloaded from; None: derived from telegram_base_url (see file_base_url()).
    telegram_base_file_url: str | None = Field(None, alias="TELEGRAM_BASE_FILE_URL")
    admin_ids: Annotated[frozenset[int], NoDecode] = Field(frozenset(), alias="HELPLINE_ADMIN_IDS")
    webhook_listen: str = Field("0.0.0.0", alias="HELPLINE_WEBHOOK_LISTEN")
    webhook_port: int = Field(8443, alias="HELPLINE_WEBHOOK_PORT")
    webhook_secret: SecretStr | None = Field(None, alias="HELPLINE_WEBHOOK_SECRET")
    # Seconds one getUpdates long poll waits for news (Telegram allows up to 50).
    polling_timeout: int = Field(30, ge=0, le=50, alias="HELPLINE_POLLING_TIMEOUT")
    # Telegram's documented flood limit is about 30 messages a second overall.
    telegram_max_rate: float = Field(30.0, ge=0.0, alias="HELPLINE_TELEGRAM_MAX_RATE")
    # How often one API call is retried after a 429 (each retry waits the server's retry_after).
    telegram_max_retries: int = Field(3, ge=0, alias="HELPLINE_TELEGRAM_MAX_RETRIES")
    # Updates handled at once (PTB's concurrent_updates); inference is bounded separately below.
    concurrent_updates: int = Field(64, ge=1, alias="HELPLINE_CONCURRENT_UPDATES")

    # --- Artifacts ------------------------------------------------------------------------------
    model_dir: Path = Field(Path("var/model"), alias="HELPLINE_MODEL_DIR")
    index_dir: Path = Field(Path("var/index"), alias="HELPLINE_INDEX_DIR")
    docs_dir: Path = Field(Path("data/docs"), alias="HELPLINE_DOCS_DIR")
    db_path: Path = Field(Path("var/helpline.db"), alias="HELPLINE_DB")

    # --- Answering (tuned by bench/tune_engine.py) ----------------------------------------------
    # Measured by bench/tune_engine.py (figures in README.md, "Benchmarks"): hybrid retrieval, the
    # shipped reader, data/diabetes-qa/dev.json and calib.json asked against data/docs, by document.
    top_k: int = Field(TUNED_TOP_K, ge=1, le=50, alias="HELPLINE_TOP_K")
    # Retrieval: hybrid (BM25 + dense, fused), bm25 or dense. Hybrid needs an index built with vectors.
    retrieval_mode: Literal["hybrid", "bm25", "dense"] = Field("hybrid", alias="HELPLINE_RETRIEVAL_MODE")
    # The dense side's weight in hybrid fusion (bench/tune_retrieval.py, figures in README.md).
    dense_weight: float = Field(HybridSettings.dense_weight, ge=0.0, le=1.0, alias="HELPLINE_DENSE_WEIGHT")
    # The sentence encoder of dense retrieval; None: the packaged all-MiniLM-L6-v2.
    encoder_dir: Path | None = Field(None, alias="HELPLINE_ENCODER_DIR")
    # The question side of dense retrieval (a folder of retrieval train-query-encoder); None ("none"):
    # questions are embedded by the passage encoder.
    query_encoder_dir: Path | None = Field(SHIPPED_QUERY_ENCODER_DIR, alias="HELPLINE_QUERY_ENCODER_DIR")
    # Weight of a passage's retrieval score next to the reader's margin when choosing the answer.
    retrieval_weight: float = Field(TUNED_RETRIEVAL_WEIGHT, ge=0.0, alias="HELPLINE_RETRIEVAL_WEIGHT")
    # Answers below this calibrated confidence are declined; unset: the threshold fitted with the
    # model's calibration.json (chosen for 80% of answers right on its held-out questions, out of fold).
    min_confidence: float | None = Field(None, ge=0.0, le=1.0, alias="HELPLINE_MIN_CONFIDENCE")
    # The longest answer span; None keeps the served model's own (its reader_config.json).
    max_answer_tokens: int | None = Field(None, ge=1, alias="HELPLINE_MAX_ANSWER_TOKENS")
    # Candidate spans the reader returns per passage (all compete in one softmax).
    spans_per_passage: int = Field(1, ge=1, le=20, alias="HELPLINE_SPANS_PER_PASSAGE")
    # An int8 reader's close calls (confidence this near the threshold) are re-read on the fp32 export
    # (bot.fusion.needs_recheck; 0: never). See TUNED_RECHECK_MARGIN.
    recheck_margin: float = Field(TUNED_RECHECK_MARGIN, ge=0.0, lt=1.0, alias="HELPLINE_RECHECK_MARGIN")
    # CPU threads for the reader's forward pass and the query encoder (torch.set_num_threads and the
    # ONNX sessions' intra-op threads; 0: one per core). One per core by default, measured with
    # bench/bench_answer_latency.py on the 2-core machine at load 1.2, k=8, 100 dev questions: int8 ONNX
    # p50 263 ms on two threads vs 455 ms on one, torch 417 vs 679 ms. Earlier runs, on the same
    # machine crowded by training jobs (load 2.6-6.7), favoured one thread (p95 666 vs 1117 ms at k=5):
    # each parallel region waits for its slowest, descheduled thread. On a shared, busy machine set 1.
    reader_threads: int = Field(0, ge=0, le=256, alias="HELPLINE_READER_THREADS")
    # The reader's runtime (finetune/runtime.py): auto = the fastest measured on a CPU (OpenVINO bf16 on
    # a CPU with AMX, else int8 ONNX Runtime), torch on CUDA; torch = the bf16/fp32 torch path. The query
    # encoder of dense/hybrid retrieval runs on the same runtime, in fp32 (bot.engine.encoder_backend).
    reader_backend: Literal["auto", "torch", "onnx", "onnx-int8", "openvino"] = Field(
        "auto", alias="HELPLINE_READER_BACKEND"
    )
    # Where the ONNX exports of the served model live (built there on first load when missing or
    # stale); None: beside the weights, MODEL_DIR/onnx. Set it when the model folder is read-only.
    reader_export_dir: Path | None = Field(None, alias="HELPLINE_READER_EXPORT_DIR")

    # --- Members --------------------------------------------------------------------------------
    rate_limit_per_minute: int = Field(10, ge=1, alias="HELPLINE_RATE_LIMIT")
    max_concurrent_answers: int = Field(2, ge=1, alias="HELPLINE_MAX_CONCURRENCY")
    max_question_chars: int = Field(1000, ge=10, alias="HELPLINE_MAX_QUESTION_CHARS")

    # --- People behind the bot: volunteers, the group's FAQ, documents from Telegram ------------
    # The volunteers' Telegram group (a negative id); None: no "Ask a volunteer" button.
    volunteer_chat_id: int | None = Field(None, alias="HELPLINE_VOLUNTEER_CHAT_ID")
    # Open tickets a member may have at once (a few: volunteers are people, not a queue to flood).
    max_open_tickets: int = Field(3, ge=1, le=100, alias="HELPLINE_MAX_OPEN_TICKETS")
    # Tickets older than this are closed by /tickets (their members are told kindly).
    ticket_max_age_hours: float = Field(72.0, gt=0.0, alias="HELPLINE_TICKET_MAX_AGE_HOURS")
    # The least cosine similarity (all-MiniLM-L6-v2) at which a question counts as an FAQ question.
    faq_threshold: float = Field(TUNED_FAQ_THRESHOLD, ge=-1.0, le=1.0, alias="HELPLINE_FAQ_THRESHOLD")
    # Largest document an admin may upload (Telegram's cloud Bot API serves files up to 20 MB).
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1, alias="HELPLINE_MAX_UPLOAD_BYTES")

    # --- Privacy --------------------------------------------------------------------------------
    hash_member_ids: bool = Field(True, alias="HELPLINE_HASH_MEMBER_IDS")
    store_question_text: bool = Field(True, alias="HELPLINE_STORE_QUESTIONS")
    # Key for the member-id hash; when unset, one is generated and kept in the database.
    member_hash_key: SecretStr | None = Field(None, alias="HELPLINE_HASH_KEY")

    # --- Admin console (`bot console`) ---------------------------------------------------------
    # The console's admin token; when unset, one is generated, its hash kept in the database, and
    # printed once at start-up.
    console_token: SecretStr | None = Field(None, alias="HELPLINE_CONSOLE_TOKEN")
    console_host: str = Field("127.0.0.1", alias="HELPLINE_CONSOLE_HOST")
    console_port: int = Field(8765, ge=0, le=65535, alias="HELPLINE_CONSOLE_PORT")
    # What the retrain button trains on (with the console's annotations) and scores both models on.
    console_train_data: Path = Field(Path("data/diabetes-qa/train.json"), alias="HELPLINE_CONSOLE_TRAIN_DATA")
    console_dev_data: Path = Field(Path("data/diabetes-qa/dev.json"), alias="HELPLINE_CONSOLE_DEV_DATA")
    # More `finetune train` options for the retrain button, e.g. "--epochs 1 --max-train-examples 500".
    console_train_args: str = Field("", alias="HELPLINE_CONSOLE_TRAIN_ARGS")

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _parse_admin_ids(cls, value: object) -> object:
        """Accept ``"1, 2,3"`` from the environment as well as a list of ints."""
        if isinstance(value, str):
            parts = [p.strip() for p in value.split(",") if p.strip()]
            bad = [p for p in parts if not p.lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"HELPLINE_ADMIN_IDS must be comma-separated Telegram user ids, got {bad!r}")
            return frozenset(int(p) for p in parts)
        return value

    def file_base_url(self) -> str:
        """Where the bot downloads files: ``TELEGRAM_BASE_FILE_URL``, else ``TELEGRAM_BASE_URL`` with its
        ``/bot`` turned into ``/file/bot`` (Telegram's own layout, and a local Bot API server's), so a
        custom server is never bypassed for the public host.

        Raises:
            ValueError: the base URL has no ``/bot`` to derive from and no file URL is set.
        """
        if self.telegram_base_file_url:
            return self.telegram_base_file_url
        base = self.telegram_base_url
        for marker in ("/bot{token}", "/bot"):
            head, found, tail = base.rpartition(marker)
            if found and (marker != "/bot" or not tail):
                return f"{head}/file{marker}{tail}"
        raise ValueError(
            f"cannot derive the file URL from TELEGRAM_BASE_URL={base!r} (it does not end in /bot): "
            "set TELEGRAM_BASE_FILE_URL"
        )

    @field_validator("query_encoder_dir", mode="before")
    @classmethod
    def _parse_query_encoder_dir(cls, value: object) -> object:
        """``none`` (any case) turns the query encoder off; an empty value is a mistake, not "off"."""
        if isinstance(value, str) and not value.strip():
            raise ValueError(f"HELPLINE_QUERY_ENCODER_DIR is empty: give a folder, or {NO_QUERY_ENCODER!r}")
        return query_encoder_setting(value) if isinstance(value, str) else value

    def model_fallback(self) -> Path | None:
        """The shipped reader when ``model_dir`` is the untouched default, else None.

        A model directory the admin configured must hold a model: serving the shipped reader instead
        would hide a typo behind plausible answers.
        """
        return SHIPPED_MODEL_DIR if self.model_dir == type(self).model_fields["model_dir"].default else None

    def served_model_dir(self) -> Path:
        """The reader to serve (see ``served_model_dir``).

        Raises:
            ModelDirError: a configured ``model_dir`` holds no model.
        """
        return served_model_dir(self.model_dir, self.model_fallback())


def served_model_dir(model_dir: Path, fallback: Path | None) -> Path:
    """``model_dir`` when it holds a model, else ``fallback`` (when there is one).

    Args:
        model_dir: the configured model directory.
        fallback: what to serve when ``model_dir`` holds no model; None makes that an error.

    Raises:
        ModelDirError: ``model_dir`` holds no model and there is no fallback; the message names it.
    """
    if (model_dir / "config.json").is_file():
        return model_dir
    if fallback is not None:
        return fallback
    raise ModelDirError(
        f"no model in {model_dir} (HELPLINE_MODEL_DIR or --model-dir): no config.json there; point it at"
        f" a directory written by `finetune train` (if a training run is replacing it, retry in a moment)"
    )
