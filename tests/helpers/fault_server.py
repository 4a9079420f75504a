"""Fork server for the fault-injection tests: imports once, then runs each small training in a forked child.

Says ``{"ready": true}`` once loaded, then reads one JSON command per line on stdin: ``{"work": DIR,
"delay": seconds, "signal": "KILL"|"INT"|null, "fault": "point:N"|null}``. Forks a child that trains (resuming
from DIR/checkpoints), kills it after ``delay`` seconds with ``signal`` if it is still running, and answers one
JSON line: ``{"status": exit code or -signal, "killed": bool}``, ``killed`` meaning that the signal was sent
before the training had returned (the child reports that moment; after it, SIGINT is blocked). Forking keeps
each run to its training time (no interpreter start, no torch import, no import of torch._dynamo, which the
first optimizer would pull in); the parent never runs a torch operation, so the children start clean.

usage: python fault_server.py CORPUS_DIR
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

import torch
import torch._dynamo  # noqa: F401  torch imports it on the first optimizer (seconds); here, not in every child

from etm import ETM
from etm.corpus import PreparedCorpus
from etm.persistence import save_model
from etm.training import TrainingConfig, train


def run(corpus: PreparedCorpus, work: Path) -> None:
    """The training every child runs: always resumes, so a chain of killed runs ends where one run would."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ETM(6, len(corpus.vocabulary), 48, 24, enc_drop=0.1)
    config = TrainingConfig(epochs=5, batch_size=100, lr=0.01, seed=3, checkpoint_every=1, encoder_token_drop=0.2,
                            ema_decay=0.5)
    result = train(model, corpus, config, checkpoint_dir=work / "checkpoints", resume=True)
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in result.history]
    save_model(work / "result", result.model, corpus.vocabulary,
               extra={"history_without_time": history, "best_epoch": result.best_epoch})


def _child(corpus: PreparedCorpus, command: dict, report: int) -> None:
    """Train, then tell the parent (on ``report``) the moment the run had finished, and leave at once."""
    code = 1
    try:
        try:
            if command.get("fault"):
                os.environ["ETM_FAULT_KILL"] = command["fault"]
            run(corpus, Path(command["work"]))
            finished = time.monotonic()
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # a later SIGINT finds a finished run
            _let_pending_handlers_run()
            os.write(report, repr(finished).encode())
            code = 0
        except KeyboardInterrupt:
            code = 130
        except BaseException:
            traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)  # never the parent's clean-up


def _let_pending_handlers_run() -> None:
    """Entering a Python function is where CPython runs a signal handler that is pending (e.g. SIGINT's)."""


def serve(corpus: PreparedCorpus) -> None:
    print(json.dumps({"ready": True}), flush=True)  # imports done: runs are timed from here
    for line in sys.stdin:
        command = json.loads(line)
        read_end, report = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _child(corpus, command, report)
        os.close(report)
        deadline = time.monotonic() + float(command.get("delay") or 1e9)
        sent = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if command.get("signal") and sent is None and time.monotonic() >= deadline:
                os.kill(pid, getattr(signal, "SIG" + command["signal"]))  # the child is not reaped yet: its pid
                sent = time.monotonic()
            time.sleep(0.002)
        finished = os.read(read_end, 64)
        os.close(read_end)
        # killed: the signal was sent before the run had finished (a kill that found a finished run does not count)
        killed = sent is not None and (not finished or sent < float(finished))
        print(json.dumps({"status": os.waitstatus_to_exitcode(status), "killed": killed}), flush=True)


if __name__ == "__main__":
    serve(PreparedCorpus.load(sys.argv[1]))
