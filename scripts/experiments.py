"""What the experiment scripts share (``shared_norm.py``, ``rerank.py``): their inputs, their data
files, and the pieces of their training loops.

Both need a loop of their own (a batch is whole groups of one question's passages, which
``transformers.Trainer`` would need a sampler, collator and ``compute_loss`` for); these are the parts
that loop has in common with our Trainer runs: the seeded order, AdamW with 10% linear warm-up, gradient
clipping, and an output folder that appears whole or not at all. torch is imported by the callers.
"""

from __future__ import annotations

import pickle
import random
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

WEIGHT_DECAY = 0.01
WARMUP_SHARE = 0.1
MAX_GRAD_NORM = 1.0


def seeded_batches(n_items: int, per_batch: int, seed: int) -> list[list[int]]:
    """The item indices in a seeded random order, cut into batches (the global generator is left alone)."""
    order = list(range(n_items))
    random.Random(seed).shuffle(order)
    return [order[i : i + per_batch] for i in range(0, len(order), per_batch)]


def adamw_with_warmup(model: Any, lr: float, steps: int) -> tuple[Any, Any]:
    """AdamW and its linear schedule with warm-up over the first tenth of ``steps``."""
    import torch  # noqa: PLC0415
    from transformers import get_linear_schedule_with_warmup  # noqa: PLC0415

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(WARMUP_SHARE * steps), steps)


def optimiser_step(loss: Any, model: Any, optimizer: Any, schedule: Any) -> None:
    """Back-propagate ``loss``, clip the gradients, step the optimiser and the schedule."""
    import torch  # noqa: PLC0415

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad()


def save_whole(out: Path, write: Callable[[Path], None]) -> None:
    """``write`` into a temp folder beside ``out``, then rename it to ``out`` (removed if it fails)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        write(tmp)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def start_run(data: Path, out: Path, *, made_by: str, seed: int, threads: int) -> Any:
    """The pickled training data of a run, after checking that it exists and that ``out`` does not
    (a finished run is never overwritten), with torch seeded and its threads set.

    Raises:
        SystemExit: a missing data file (the message says which command makes it) or an existing ``out``.
    """
    import torch  # noqa: PLC0415

    if not data.is_file():
        raise SystemExit(f"{data}: no such file (make it with `{made_by}`)")
    if out.exists():
        raise SystemExit(f"{out}: exists; choose a new output folder")
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    return pickle.loads(data.read_bytes())  # our own file, written by the script's data command


def require(script: str, *paths: Path) -> None:
    """Stop with a message naming the script and the first of ``paths`` that does not exist."""
    for path in paths:
        if not path.exists():
            raise SystemExit(f"{script}: {path}: no such file or folder")


def write_pickle(path: Path, data: Any) -> None:
    """``data`` pickled to ``path`` through a temp file, so a reader never meets half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(pickle.dumps(data))
    tmp.replace(path)


def served_index(index_dir: Path) -> Any:
    """The index as the bot serves it: its retrieval settings and query encoder (loaded only here)."""
    from bot.config import Settings  # noqa: PLC0415
    from bot.engine import EngineConfig, make_encoder  # noqa: PLC0415
    from retrieval import load_index  # noqa: PLC0415

    config = EngineConfig.from_settings(Settings(_env_file=None, index_dir=index_dir))
    return load_index(index_dir, make_encoder(config), config.retrieval)
