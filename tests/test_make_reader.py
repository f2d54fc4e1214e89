"""scripts/make_reader.sh, with its commands echoed instead of run: the stages it resumes from are skipped,
stage 6 trains on the batch-8 questions as ``build.py untaught`` gives them, and stage 7 (batch 9) runs
only when asked for."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_resumed(work: Path, finished: int, **env: str) -> subprocess.CompletedProcess:
    """``make_reader.sh`` with its commands echoed, in ``work`` where stages 1..``finished`` are done and
    the next stage's folder is there (what the echoed ``finetune train`` would have written)."""
    for n in range(1, finished + 1):  # finished stages are kept
        (work / f"stage{n}").mkdir(exist_ok=True)
        (work / f"stage{n}" / "metrics.json").write_text("{}")
    (work / f"stage{finished + 1}").mkdir(exist_ok=True)
    for made in ("squad-dev.json", "squad-mix.json", "stage5-squad.json"):
        (work / made).write_text("{}")
    env = {**os.environ, "FINETUNE": "echo finetune", "MAKE_NEG": "echo make_neg", "WORK": str(work),
           "OUTPUT": str(work / "out"), **env}  # fmt: skip
    done = subprocess.run(
        ["bash", "scripts/make_reader.sh"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def test_stage_6_trains_from_stage_5_on_the_untaught_questions(tmp_path: Path) -> None:
    done = run_resumed(tmp_path, finished=5)
    train = (tmp_path / "stage6.json").read_text().split()
    assert train[:2] == ["finetune", "train"]
    data = [train[i + 1] for i, word in enumerate(train) if word == "--data"]
    assert data == [str(tmp_path / f) for f in ("stage6-diabetes.json", "stage6-diabetes-neg.json",
                                                  "stage5-squad.json", "stage6-squad-neg.json")]  # fmt: skip
    assert train[train.index("--base-model") + 1] == str(tmp_path / "stage5")
    taught = json.loads((tmp_path / "stage6-diabetes.json").read_text())["data"]
    assert sum(len(p["qas"]) for a in taught for p in a["paragraphs"]) >= 500
    twins = [line for line in done.stdout.splitlines() if line.startswith("make_neg docs")]
    assert len(twins) == 1 and "--sample 250" in twins[0]  # only stage 6 made twins
    assert not (tmp_path / "stage1.json").exists()  # stages 1-5 were not run again


def test_stage_7_is_opt_in_and_trains_from_stage_6_on_batch_9(tmp_path: Path) -> None:
    done = run_resumed(tmp_path, finished=6, STAGE7_EPOCHS="1")
    train = (tmp_path / "stage7.json").read_text().split()
    assert train[train.index("--base-model") + 1] == str(tmp_path / "stage6")
    assert train[train.index("--data") + 1] == str(tmp_path / "stage7-diabetes.json")
    taught = json.loads((tmp_path / "stage7-diabetes.json").read_text())["data"]
    assert sum(len(p["qas"]) for a in taught for p in a["paragraphs"]) >= 800
    squad_twins = [line for line in done.stdout.splitlines() if line.startswith("make_neg squad")]
    assert len(squad_twins) == 1 and "--seed 16" in squad_twins[0]  # only stage 7 ran: SEED + 3
    (tmp_path / "stage7.json").unlink()
    run_resumed(tmp_path, finished=6)  # the default: the shipped recipe stops at stage 6
    assert not (tmp_path / "stage7.json").exists()
