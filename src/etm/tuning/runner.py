"""Workers of a study: the trial loop each runs, and the processes that run it side by side.

Every worker (the calling process with ``n_jobs=1``, else ``n_jobs``
processes started with ``spawn``) opens the storage itself and loops: under
a file lock in the study directory it counts the trials that are finished
or running; below the budget it starts one (Optuna's ``optimize`` with one
trial, which also keeps database heartbeats) and lets go of the lock once
the trial is registered as running, so the workers of one machine never run
more than the budget. Workers on other machines share the storage but not
that lock: near the end each may start one trial more than the budget.

A trial interrupted with Ctrl-C is marked failed and queued again with the
same settings; one whose process was killed is found when the study starts
again (its process is gone) and treated the same way. A trial that fails
with an error is logged and does not count; three failures in a row stop
the worker.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from etm.corpus import CorpusSource
from etm.options import DEFAULTS
from etm.tuning.objective import TrialObjective, TrialSettings, validation_reference
from etm.tuning.space import Choice, Range
from etm.tuning.storage import MAX_RETRY, StorageSpec, open_storage, quiet_optuna_warnings, stale_local_trials

logger = logging.getLogger(__name__)

__all__ = ["WorkerSpec", "run_worker", "run_workers", "requeue", "fail_stale_local_trials", "count_trials"]

#: Failed trials in a row after which a worker stops (an error that every trial meets).
MAX_CONSECUTIVE_FAILURES = 3
PRUNING_SUFFIX = ".pruning"


@dataclass
class WorkerSpec:
    """Everything a worker process needs, picklable."""

    study_name: str
    storage: StorageSpec
    trial: TrialSettings
    n_trials: int
    corpus: Any  # a CorpusSource, or a loader (callable) that returns one in the worker
    pruner: str = "halving"
    seed: int = 0
    deadline: float | None = None  # time.time() after which no trial starts
    threads: int | None = None
    multi: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- the budget lock -------------------------------------------------------------------------
class _BudgetLock:
    """An exclusive ``flock`` on ``STUDY_DIR/.budget.lock``, released at most once per acquisition."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # no flock (Windows): workers may overshoot the budget by one trial each
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a+")  # noqa: SIM115 - released in release()
        fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing drops the flock
            self._fh = None


# -- study helpers ---------------------------------------------------------------------------------
def make_pruner(name: str, epochs: int) -> Any:
    """Optuna's pruner ``name``: "halving", "median" or "none".

    "halving": successive halving with rungs at an eighth of the epochs (at
    least 1) times 1, 3, 9, ...: at each rung a trial goes on only when it is
    in the best third of the trials that reached it. "median": after 4
    finished trials, from a quarter of the epochs on (epoch 2 at the
    earliest), a trial worse than the median at the same epoch stops.
    """
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=max(2, epochs // 4))
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 8), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner={name!r} is not one of ['median', 'halving', 'none']")


def count_trials(study: Any, *names: str) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=tuple(TrialState[n] for n in names)))


def requeue(study: Any, trial: Any) -> bool:
    """Queue a failed trial's settings again (Optuna's retry callback: up to MAX_RETRY times); True if queued."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    before = count_trials(study, "WAITING")
    with quiet_optuna_warnings():
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, trial)
    return count_trials(study, "WAITING") > before


def fail_stale_local_trials(study: Any, pruning: Any | None) -> list[int]:
    """Fail and queue again the running trials whose process on this machine has ended; their numbers."""
    from optuna.trial import TrialState

    found = []
    for trial in stale_local_trials(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))):
        study.tell(trial.number, state=TrialState.FAIL)
        if pruning is not None and "pruning_trial" in trial.user_attrs:
            side = pruning.get_trials(deepcopy=False)[int(trial.user_attrs["pruning_trial"])]
            if side.state == TrialState.RUNNING:
                pruning.tell(side.number, state=TrialState.FAIL)
        queued = requeue(study, study.get_trials(deepcopy=False)[trial.number])
        logger.warning("trial %d was left running by process %s, which has ended: marked failed%s", trial.number,
                       trial.user_attrs.get("pid"), " and queued again" if queued else f" ({MAX_RETRY} retries used)")
        found.append(trial.number)
    return found


def trial_epochs(space: dict[str, Any], corpus: CorpusSource) -> int:
    """The most epochs a trial trains: the space's ``epochs``, or what the estimator chooses for the corpus."""
    from etm.diagnostics import auto_batch_size, auto_epochs

    epochs = space.get("epochs", DEFAULTS["epochs"])
    if isinstance(epochs, Range):
        return int(epochs.high)
    if isinstance(epochs, Choice):
        return int(max(epochs.values))
    if epochs is not None:
        return int(epochs)
    n_train = corpus.n_docs("train")
    batch = space.get("batch_size", DEFAULTS["batch_size"])
    return auto_epochs(n_train, batch if isinstance(batch, int) else auto_batch_size(n_train))


def load_studies(spec: WorkerSpec, epochs: int, *, sampler_seed: int | None = None) -> tuple[Any, Any]:
    """The study (with a seeded TPE sampler and the pruner for ``epochs``) and its companion pruning study (or None)."""
    import optuna

    storage = open_storage(spec.storage)
    pruner = make_pruner(spec.pruner, epochs)
    sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=min(10, max(3, spec.n_trials // 4)))
    study = optuna.load_study(study_name=spec.study_name, storage=storage, sampler=sampler,
                              pruner=optuna.pruners.NopPruner() if spec.multi else pruner)
    pruning = None
    if spec.multi:
        pruning = optuna.load_study(study_name=spec.study_name + PRUNING_SUFFIX, storage=storage, pruner=pruner)
    return study, pruning


# -- one worker ------------------------------------------------------------------------------------
def run_worker(spec: WorkerSpec, *, worker: int = 0, on_trial: Callable[[Any], None] | None = None) -> int:
    """Run trials until the study has ``n_trials`` finished or running ones (or the deadline); returns how many."""
    import optuna
    from optuna.trial import TrialState

    corpus: CorpusSource = spec.corpus() if callable(spec.corpus) else spec.corpus
    reference = validation_reference(corpus)
    # a new sampler seed for each worker and each session, else a resumed study would replay its first draws
    study, pruning = load_studies(spec, trial_epochs(spec.trial.space, corpus),
                                  sampler_seed=spec.seed + 1000 * worker + spec.extra.get("n_existing", 0))
    lock = _BudgetLock(Path(spec.trial.study_dir) / ".budget.lock")
    objective = TrialObjective(spec.trial, corpus, reference, pruning, on_start=lock.release)
    ran = failures = 0
    while spec.deadline is None or time.time() < spec.deadline:
        lock.acquire()
        try:
            if spec.storage.url is not None:
                with quiet_optuna_warnings():
                    optuna.storages.fail_stale_trials(study)
            if count_trials(study, "COMPLETE", "PRUNED", "RUNNING") >= spec.n_trials:
                break
            objective.current = None
            try:
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
            except KeyboardInterrupt:
                _requeue_interrupted(study, pruning, objective.current)
                raise
        finally:
            lock.release()
        ran += 1
        last = study.get_trials(deepcopy=False)[objective.current] if objective.current is not None else None
        failures = failures + 1 if last is None or last.state == TrialState.FAIL else 0
        if failures >= MAX_CONSECUTIVE_FAILURES:
            raise RuntimeError(f"{failures} trials in a row failed (the last: trial "
                               f"{objective.current}); see the errors logged above")
        if on_trial is not None:
            on_trial(study)
    return ran


def _requeue_interrupted(study: Any, pruning: Any, number: int | None) -> None:
    """After Ctrl-C: fail this worker's trial (Optuna did unless the interrupt came outside the objective), queue it."""
    from optuna.trial import TrialState

    trial = None if number is None else study.get_trials(deepcopy=False)[number]
    if trial is None or trial.state not in (TrialState.RUNNING, TrialState.FAIL):
        return  # interrupted between trials: nothing was running
    if trial.state == TrialState.RUNNING:
        study.tell(number, state=TrialState.FAIL)
    side = trial.user_attrs.get("pruning_trial")
    if pruning is not None and side is not None and pruning.get_trials(deepcopy=False)[side].state.name == "RUNNING":
        pruning.tell(side, state=TrialState.FAIL)
    queued = requeue(study, study.get_trials(deepcopy=False)[number])
    logger.warning("trial %d interrupted: marked failed%s", number, "; it runs again on --resume" if queued else "")


# -- several processes --------------------------------------------------------------------------------
def _process_main(spec: WorkerSpec, worker: int, queue: Any) -> None:
    """Entry point of a worker process: logs go to the parent through ``queue``."""
    import sys

    root = logging.getLogger()
    root.handlers[:] = [logging.handlers.QueueHandler(queue)]
    root.setLevel(spec.extra.get("log_level", logging.INFO))
    import optuna

    optuna.logging.set_verbosity(spec.extra.get("optuna_verbosity", optuna.logging.INFO))
    from etm.device import set_threads

    set_threads(spec.threads, processes_per_machine=spec.extra.get("n_jobs", 1))
    try:
        run_worker(spec, worker=worker)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        logger.exception("worker %d stopped with an error", worker)
        sys.exit(1)


def run_workers(spec: WorkerSpec, n_jobs: int, progress: Callable[[], None]) -> list[int]:
    """Run ``n_jobs`` worker processes to the end, forwarding their logs; returns their exit codes.

    ``progress`` is called about once a second (to refresh a progress bar).
    Ctrl-C reaches the workers (same process group); each finishes its step,
    marks its trial failed and queues it again, then exits.
    """
    import multiprocessing as mp
    import os
    import queue as queue_module
    import signal

    import optuna

    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    spec.extra.setdefault("log_level", logging.getLogger().getEffectiveLevel())
    spec.extra.setdefault("optuna_verbosity", optuna.logging.get_verbosity())
    spec.extra["n_jobs"] = n_jobs
    procs = [ctx.Process(target=_process_main, args=(spec, w, queue), name=f"etm-tune-{w}") for w in range(n_jobs)]
    for p in procs:
        p.start()
    interrupted = False
    while True:
        try:
            while True:
                try:
                    record = queue.get(timeout=1.0)
                except queue_module.Empty:
                    break
                _forward(record)
            progress()
            if not any(p.is_alive() for p in procs):
                break
        except KeyboardInterrupt:
            if not interrupted:  # the workers also got it from the terminal; forward it when they did not
                interrupted = True
                for p in procs:
                    if p.is_alive() and p.pid is not None:
                        os.kill(p.pid, signal.SIGINT)
    for p in procs:
        p.join()
    while True:
        try:
            record = queue.get_nowait()
        except (queue_module.Empty, OSError, ValueError):
            break
        _forward(record)
    if interrupted:
        raise KeyboardInterrupt
    return [int(p.exitcode or 0) for p in procs]


def _forward(record: logging.LogRecord) -> None:
    """Handle a worker's log record here, as if logged here (this process's logger levels apply)."""
    target = logging.getLogger(record.name)
    if target.isEnabledFor(record.levelno):
        target.handle(record)
