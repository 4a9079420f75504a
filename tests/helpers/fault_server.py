"""Fork server for the fault-injection tests: imports once, then runs each small training in a forked child.

Reads one JSON command per line on stdin: ``{"work": DIR, "delay": seconds, "signal": "KILL"|"INT"|null,
"fault": "point:N"|null}``. Forks a child that trains (resuming from DIR/checkpoints), kills it after
``delay`` seconds with ``signal`` if it is still running, and answers one JSON line:
``{"status": exit code or -signal, "killed": bool}``. Forking keeps each run to its training time (no
interpreter start, no torch import); the parent never runs a torch operation, so the children start clean.

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


def serve(corpus: PreparedCorpus) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:  # the child: train, and leave without running the parent's clean-up
            code = 0
            try:
                if command.get("fault"):
                    os.environ["ETM_FAULT_KILL"] = command["fault"]
                run(corpus, Path(command["work"]))
            except KeyboardInterrupt:
                code = 130
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        deadline = time.monotonic() + float(command.get("delay") or 1e9)
        killed = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if command.get("signal") and not killed and time.monotonic() >= deadline:
                os.kill(pid, getattr(signal, "SIG" + command["signal"]))  # the child is not reaped yet: its pid
                killed = True
            time.sleep(0.002)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"status": code, "killed": killed}), flush=True)


if __name__ == "__main__":
    serve(PreparedCorpus.load(sys.argv[1]))
