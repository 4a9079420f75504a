"""Fault injection: training killed (SIGKILL) or interrupted (SIGINT) at seeded random moments, then resumed.

Every chain of killed-and-resumed runs must end with exactly the model and history of one uninterrupted run,
every kill must leave a loadable checkpoint (or none yet), and nothing temporary may be left behind. Besides
timed kills, which land in steps, validation and writes as chance has it, some runs are killed at named points
inside the writes (``ETM_FAULT_KILL``): between a file's temporary copy and its rename, between the two renames
of a checkpoint swap, and between a model's files and its commit marker.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from etm.corpus import PreparedCorpus
from etm.training.checkpoint import checkpoint_progress, read_checkpoint

SERVER = Path(__file__).parent / "helpers" / "fault_server.py"
TEMPORARY_MARKS = (".tmp", ".etm-tmp-", ".etm-old-")


class ForkServer:
    """Drives tests/helpers/fault_server.py: one command and one answer per run."""

    def __init__(self, corpus_dir: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(corpus_dir)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}, "the fork server did not start"

    def run(self, work: Path, *, delay: float | None = None, signal: str | None = None,
            fault: str | None = None) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"work": str(work), "delay": delay, "signal": signal, "fault": fault}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the fork server died"
        return json.loads(line)

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server(authors_corpus, tmp_path_factory):
    corpus_dir = tmp_path_factory.mktemp("fault-corpus") / "corpus"
    PreparedCorpus(train=authors_corpus.train.subset(range(600)), valid=authors_corpus.valid, test=None,
                   valid_halves=authors_corpus.valid_halves, test_halves=None).save(corpus_dir)
    srv = ForkServer(corpus_dir)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def reference(server, tmp_path_factory) -> tuple[Path, float]:
    """The uninterrupted run's result, and its wall time (timed kills are drawn as shares of it)."""
    work = tmp_path_factory.mktemp("fault-reference")
    start = time.perf_counter()
    assert server.run(work) == {"status": 0, "killed": False}
    return work / "result", time.perf_counter() - start


def _assert_same_result(result: Path, reference: Path) -> None:
    ours, theirs = load_file(result / "model.safetensors"), load_file(reference / "model.safetensors")
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours), "resumed weights differ from the uninterrupted run"
    history = [json.loads((p / "config.json").read_text())["history_without_time"] for p in (result, reference)]
    assert history[0] == history[1]


def _assert_clean(work: Path) -> None:
    leftovers = [str(p.relative_to(work)) for p in work.rglob("*") if any(m in p.name for m in TEMPORARY_MARKS)]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def _check_after_kill(work: Path) -> None:
    """A kill leaves the previous or the new checkpoint, complete and loadable, or none yet."""
    if checkpoint_progress(work / "checkpoints" / "last") is not None:
        _, _, _, trainer, tensors = read_checkpoint(work / "checkpoints" / "last")
        assert 0 <= trainer["epochs_completed"] <= 5 and "rng.torch" in tensors


def _chain(server: ForkServer, work: Path, kills: list[tuple[str | None, float | None, str | None]]) -> list[dict]:
    answers = []
    for signal, delay, fault in kills:
        answers.append(server.run(work, delay=delay, signal=signal, fault=fault))
        _check_after_kill(work)
    final = server.run(work)  # no kill: runs to the end from wherever the chain stopped
    assert final == {"status": 0, "killed": False}, final
    return answers


@pytest.mark.parametrize("chain_seed", [0, 1, 2])
def test_timed_kills_and_interrupts_then_resume_match_the_uninterrupted_run(server, reference, tmp_path,
                                                                           chain_seed: int) -> None:
    """Each kill comes after a random share (5-50%) of an uninterrupted run's time, so chains move on by parts."""
    rng = random.Random(chain_seed)
    reference_dir, seconds = reference
    kills = [(rng.choice(["KILL", "INT"]), rng.uniform(0.05, 0.5) * seconds, None) for _ in range(7)]
    answers = _chain(server, tmp_path, kills)
    for (signal, _, _), answer in zip(kills, answers):
        if answer["killed"]:  # the run had not finished when the signal came
            assert answer["status"] == (-9 if signal == "KILL" else 130), answer
    assert any(a["killed"] for a in answers), "every run finished before its kill: the delays are off"
    _assert_same_result(tmp_path / "result", reference_dir)
    _assert_clean(tmp_path)


def test_kills_inside_writes_then_resume_match_the_uninterrupted_run(server, reference, tmp_path) -> None:
    """Killed at named points inside checkpoint and model writes (the N-th pass of each run)."""
    kills = [(None, None, point) for point in ("write:2", "swap:1", "commit:3", "write:3", "swap:1", "commit:1",
                                               "swap:1")]
    answers = _chain(server, tmp_path, kills)
    assert [a["status"] for a in answers] == [-9] * len(kills)  # every run died at its fault point
    _assert_same_result(tmp_path / "result", reference[0])
    _assert_clean(tmp_path)
