"""Data-parallel training: two real processes under torchrun (gloo on the CPU), as users run it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from etm.cli import main

TRAIN = ["--num-topics", "5", "--t-hidden-size", "32", "--rho-size", "16", "--batch-size", "200", "--lr", "0.01",
         "--quiet", "--device", "cpu", "--checkpoint-every", "1"]


def _etm(*argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m etm ARGV`` in a fresh process (torchrun needs one), with this checkout on the path."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.run([sys.executable, "-m", "etm", *argv], capture_output=True, text=True, timeout=timeout,
                          env=env)


@pytest.fixture(scope="module")
def corpora(news_workspace) -> Path:
    root = news_workspace
    common = ["--label-field", "label", "--split-field", "split", "--strip-newsgroup", "--min-df", "3",
              "--max-df", "0.5", "--quiet"]
    assert main(["prepare", str(root / "news.jsonl.gz"), "-o", str(root / "memory"), *common]) == 0
    assert main(["prepare", str(root / "news.jsonl.gz"), "-o", str(root / "sharded"), "--shard-size", "100",
                 *common]) == 0
    return root


def _history(model: Path) -> list[dict]:
    return json.loads((model / "history.json").read_text())


def test_two_processes_train_resume_and_reproduce(corpora: Path) -> None:
    """3 epochs straight and 2 + 1 resumed give the same model: resume restores every rank's state."""
    straight, resumed = corpora / "ddp-straight", corpora / "ddp-resumed"
    run = _etm("train", str(corpora / "sharded"), "-o", str(straight), "--epochs", "3", "--nproc", "2", *TRAIN)
    assert run.returncode == 0, run.stderr
    assert "2 processes" in run.stderr  # logged by rank 0 only once
    assert run.stderr.count("INFO etm.training: training ETM:") == 1  # the worker logs only its warnings
    assert "Warning" not in run.stderr and "OMP_NUM_THREADS" not in run.stderr, run.stderr  # no torch noise
    history = _history(straight)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert all(np.isfinite(h["valid_perplexity"]) for h in history)

    first = _etm("train", str(corpora / "sharded"), "-o", str(resumed), "--epochs", "2", "--nproc", "2", *TRAIN)
    assert first.returncode == 0, first.stderr
    again = _etm("train", str(corpora / "sharded"), "-o", str(resumed), "--epochs", "3", "--nproc", "2",
                 "--resume", *TRAIN)
    assert again.returncode == 0, again.stderr
    assert [h["loss"] for h in _history(resumed)] == [h["loss"] for h in history]
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_a_seeded_two_process_run_resumes_exactly(corpora: Path) -> None:
    """The seed prior reads the decoder's running statistics: every rank must hold the same ones at a checkpoint.

    Each rank normalises its own batches; the ranks average their running statistics at the end of every epoch,
    so rank 0's checkpoint is every rank's state and a resumed run continues as the straight one does.
    """
    seeds = corpora / "seeds.yaml"
    seeds.write_text("space: [space, nasa, orbit]\nreligion: [god, jesus, church]\n", encoding="utf-8")
    seeded = [*TRAIN, "--seeds", str(seeds), "--free-topics", "2"]
    straight, resumed = corpora / "ddp-seeded-straight", corpora / "ddp-seeded-resumed"
    run = _etm("train", str(corpora / "sharded"), "-o", str(straight), "--epochs", "3", "--nproc", "2", *seeded)
    assert run.returncode == 0, run.stderr
    first = _etm("train", str(corpora / "sharded"), "-o", str(resumed), "--epochs", "2", "--nproc", "2", *seeded)
    assert first.returncode == 0, first.stderr
    again = _etm("train", str(corpora / "sharded"), "-o", str(resumed), "--epochs", "3", "--nproc", "2",
                 "--resume", *seeded)
    assert again.returncode == 0, again.stderr
    assert [h["loss"] for h in _history(resumed)] == [h["loss"] for h in _history(straight)]
    a = load_file(str(straight / "model.safetensors"))
    b = load_file(str(resumed / "model.safetensors"))
    assert any("running_mean" in key for key in a)  # the product decoder's batch norms are in the model
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_two_processes_on_an_in_memory_corpus_track_one_process(corpora: Path) -> None:
    """Same global batches, gradients averaged: the two runs follow each other closely."""
    one, two = corpora / "one", corpora / "two"
    assert main(["train", str(corpora / "memory"), "-o", str(one), "--epochs", "4", *TRAIN]) == 0
    run = _etm("train", str(corpora / "memory"), "-o", str(two), "--epochs", "4", "--nproc", "2", *TRAIN)
    assert run.returncode == 0, run.stderr
    h1, h2 = _history(one), _history(two)
    assert len(h1) == len(h2) == 4
    # the reparameterisation noise differs between ranks, so the numbers differ, but not by much
    for a, b in zip(h1, h2):
        assert abs(a["loss"] - b["loss"]) / a["loss"] < 0.05
    assert abs(h1[-1]["valid_perplexity"] - h2[-1]["valid_perplexity"]) / h1[-1]["valid_perplexity"] < 0.1
    assert h2[-1]["valid_perplexity"] < h2[0]["valid_perplexity"]  # it learns


def test_more_processes_than_shards_is_a_clear_error(corpora: Path, tmp_path: Path) -> None:
    one_shard = tmp_path / "one-shard"
    assert main(["prepare", str(corpora / "news.jsonl.gz"), "-o", str(one_shard), "--label-field", "label",
                 "--split-field", "split", "--min-df", "3", "--shard-size", "100000", "--quiet"]) == 0
    run = _etm("train", str(one_shard), "-o", str(tmp_path / "m"), "--epochs", "1", "--nproc", "2", *TRAIN)
    assert run.returncode != 0
    assert "--shard-size" in run.stderr and "1 training shards but 2 processes" in run.stderr


def test_lazy_updates_refuse_several_processes(corpora: Path, tmp_path: Path) -> None:
    run = _etm("train", str(corpora / "memory"), "-o", str(tmp_path / "m"), "--epochs", "1", "--nproc", "2",
               "--lazy-updates", *TRAIN)
    assert run.returncode != 0
    assert "lazy_updates works in one process" in run.stderr


def test_a_one_process_checkpoint_resumes_in_two_processes(corpora: Path) -> None:
    """The checkpoint holds no per-rank state: a run can continue with another number of processes."""
    out = corpora / "one-then-two"
    assert main(["train", str(corpora / "sharded"), "-o", str(out), "--epochs", "2", *TRAIN]) == 0
    first = _history(out)
    run = _etm("train", str(corpora / "sharded"), "-o", str(out), "--epochs", "3", "--nproc", "2", "--resume",
               *TRAIN)
    assert run.returncode == 0, run.stderr
    history = _history(out)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["loss"] for h in history[:2]] == [h["loss"] for h in first]
    assert np.isfinite(history[2]["valid_perplexity"])
