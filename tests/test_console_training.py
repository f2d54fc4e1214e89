"""The console's retrain button: a background job that trains, compares, installs only if not worse.

The job runs ``finetune train --promote-if-better`` in a child process on the tiny random BERT of
``finetune_fixtures``: trained hard on the fixture questions it beats the untrained served model and is
installed (with a rollback); a job whose training fails leaves the served model untouched.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bot.console import create_app
from finetune.reader_config import ReaderConfig
from tests.console_fixtures import bearer, csrf_of, logged_in, make_console
from tests.finetune_fixtures import make_model_dir, squad_document, write_json

TINY = ("--batch-size 4 --max-seq-length 48 --doc-stride 16 --precision fp32 --eval-batch-size 8"
        " --dataloader-workers 0 --seed 0 --early-stopping-patience 0 --warmup-ratio 0")  # fmt: skip


def weights(model_dir: Path) -> str:
    return hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def untrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = make_model_dir(tmp_path_factory.mktemp("served") / "tiny")
    ReaderConfig(max_seq_length=48, doc_stride=16).save(model)
    return model


def console_for(tmp_path: Path, untrained: Path, train_args: str):
    model_dir = tmp_path / "var" / "model"
    shutil.copytree(untrained, model_dir)
    data = write_json(tmp_path / "train.json", squad_document())
    console = make_console(
        tmp_path,
        model_dir=model_dir,
        console_train_data=data,
        console_dev_data=data,
        console_train_args=train_args,
    )
    api = TestClient(create_app(console))
    record = {
        "doc_id": "insulin.md",
        "question": "What is insulin?",
        "answer_start": 11,
        "answer_text": "a hormone",
    }
    assert api.post("/api/annotations", headers=bearer(), json=record).status_code == 201
    return console, api, model_dir


def wait_for(api: TestClient, timeout_s: float = 240.0) -> dict:
    deadline = time.monotonic() + timeout_s
    seen_fractions = []
    while time.monotonic() < deadline:
        status = api.get("/api/train", headers=bearer()).json()
        seen_fractions.append(status["fraction"])
        if status["state"] != "running":
            return {**status, "seen": seen_fractions}
        time.sleep(0.5)
    raise AssertionError(f"the job did not finish in {timeout_s}s: {status}")


def test_retraining_installs_a_better_model_and_rolls_back(tmp_path: Path, untrained: Path) -> None:
    console, api, model_dir = console_for(tmp_path, untrained, f"--epochs 15 --learning-rate 3e-3 {TINY}")
    before = weights(model_dir)
    client = logged_in(console)
    token = csrf_of(client.get("/train").text)
    assert client.post("/train", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    second = api.post("/api/train", headers=bearer())
    assert second.status_code == 409 and "already running" in second.json()["detail"]
    status = wait_for(api)
    console.jobs.wait(30)
    assert status["state"] == "done", status
    promotion = status["result"]["promotion"]
    assert promotion["promoted"] is True and promotion["candidate"]["f1"] >= promotion["served"]["f1"]
    assert "/reload" in status["message"] and status["rollback_available"] is True
    assert weights(model_dir) != before and weights(model_dir.with_name("model.previous")) == before
    page = client.get("/train").text
    assert 'id="rollback"' in page and "installed the new model" in page
    assert (
        client.post("/train/rollback", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    )
    assert weights(model_dir) == before
    console.close()


def test_a_failed_job_leaves_the_served_model_untouched(tmp_path: Path, untrained: Path) -> None:
    console, api, model_dir = console_for(tmp_path, untrained, f"--epochs 0 {TINY}")  # refused by TrainConfig
    before = weights(model_dir)
    assert api.post("/api/train", headers=bearer()).status_code == 202
    status = wait_for(api, timeout_s=120)
    assert status["state"] == "failed" and "epochs must be a positive number" in status["message"]
    assert "served model is unchanged" in status["message"]
    assert weights(model_dir) == before and not model_dir.with_name("model.previous").exists()
    console.close()


def test_nothing_to_train_on_is_refused(tmp_path: Path) -> None:
    console = make_console(tmp_path)
    response = TestClient(create_app(console)).post("/api/train", headers=bearer())
    assert response.status_code == 409 and "nothing to train on" in response.json()["detail"]
    console.close()


def test_a_job_started_by_another_console_blocks_a_second(tmp_path: Path, untrained: Path) -> None:
    from bot.console.jobs import _take_lock

    console, api, model_dir = console_for(tmp_path, untrained, TINY)
    work = model_dir.with_name("model.candidate")
    work.mkdir(parents=True, exist_ok=True)
    other = _take_lock(work / "job.lock")  # what a training child of another console process holds
    assert other is not None
    response = api.post("/api/train", headers=bearer())
    assert response.status_code == 409 and "another console" in response.json()["detail"]
    other.close()
    console.close()
