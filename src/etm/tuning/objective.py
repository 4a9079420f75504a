"""One trial of a study: train a :class:`~etm.TopicModel` with the trial's settings and score it on validation.

The objectives are measured on the corpus's *validation* split only (the test
split is never read):

* ``quality``: NPMI coherence of each topic's top 10 words over the
  validation documents' co-occurrences, times the diversity of the top 25
  words (:mod:`etm.metrics`), of the model the training loop selects (the
  epoch with the best validation perplexity); maximised. The coherence is
  the small-reference estimate of :mod:`etm.validation`
  (:data:`VALIDATION_PSEUDO_COUNT`), the same score ``n_init`` chooses
  restarts by;
* ``perplexity``: that epoch's document-completion perplexity on the
  validation halves (per document, the authors' form); minimised.

Pruning reads the per-epoch validation curve through ``fit``'s
``on_epoch_end`` hook. Optuna's pruners need one objective
(``Trial.report`` is refused in multi-objective studies), so:

* with one objective the trial reports that objective after every epoch
  (validation quality of the current weights, or validation perplexity) and
  the study's pruner decides;
* with both objectives the trial reports its validation *quality* to a
  companion single-objective study (``<study name>.pruning``, same storage,
  same pruner), whose pruner decides; a pruned trial is PRUNED in both.
  Not perplexity: it falls with K at every epoch, so pruning on it stops
  every small-K trial, which is where the best quality often is.

A trial whose loss diverges (NaN) counts as pruned at that epoch.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import scipy.sparse as sp

from etm.corpus import CorpusSource
from etm.tuning.space import describe, suggest
from etm.tuning.storage import process_tag, quiet_optuna_warnings
from etm.validation import VALIDATION_PSEUDO_COUNT, validation_quality, validation_reference

logger = logging.getLogger(__name__)

__all__ = ["OBJECTIVES", "DIRECTIONS", "VALIDATION_PSEUDO_COUNT", "validation_reference", "validation_quality",
           "TrialObjective"]

#: ``objective`` -> the metrics the study optimises, in order.
OBJECTIVES: dict[str, tuple[str, ...]] = {"both": ("quality", "perplexity"), "quality": ("quality",),
                                          "perplexity": ("perplexity",)}
#: metric -> Optuna direction.
DIRECTIONS = {"quality": "maximize", "perplexity": "minimize"}


@dataclass
class TrialSettings:
    """What every worker needs to run trials (picklable: it crosses to worker processes)."""

    objective: str
    space: dict[str, Any]
    device: str
    study_dir: str
    save_models: bool = True
    corpus_path: str | None = None


class _Stop(Exception):
    """Raised by the epoch monitor to end a trial early; becomes ``optuna.TrialPruned``."""


class _Monitor:
    """``on_epoch_end``: reports the validation curve to the pruner and stops a poor trial."""

    def __init__(self, target: Any, metric: str, reference: sp.csr_matrix) -> None:
        self.target, self.metric, self.reference = target, metric, reference
        self.epochs = 0
        self.stopped: str | None = None

    def __call__(self, epoch: int, model: Any, record: dict[str, Any]) -> None:
        from etm.training import get_topic_word

        self.epochs = epoch
        if "valid_perplexity" not in record:
            return
        if self.metric == "quality":
            record["valid_quality"] = value = validation_quality(get_topic_word(model), self.reference)["quality"]
        else:
            value = record["valid_perplexity"]
        self.target.report(float(value), epoch)
        if self.target.should_prune():
            self.stopped = f"pruned at epoch {epoch} (validation {self.metric} {value:.4g})"
            raise _Stop(self.stopped)


def settings_text(params: Mapping[str, Any], space: Mapping[str, Any]) -> str:
    shown = [n for n in params if n in space and not describe({n: space[n]})[n].startswith("fixed")]
    return " ".join(f"{n}={_short(params[n])}" for n in shown)


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class TrialObjective:
    """The function Optuna calls for each trial: train, score on validation, save the model, log one line."""

    def __init__(self, settings: TrialSettings, corpus: CorpusSource, reference: sp.csr_matrix,
                 pruning_study: Any = None, on_start: Callable[[], None] | None = None) -> None:
        self.settings, self.corpus, self.reference = settings, corpus, reference
        self.pruning_study, self.on_start = pruning_study, on_start
        self.current: int | None = None

    def __call__(self, trial: Any) -> float | tuple[float, ...]:
        from etm.estimator import TopicModel
        from etm.training import TrainingDivergedError

        self.current = trial.number
        if self.on_start is not None:
            self.on_start()
        pid = os.getpid()
        for key, value in (("host", socket.gethostname()), ("pid", pid), ("process", process_tag(pid))):
            trial.set_user_attr(key, value)
        params = suggest(trial, self.settings.space)
        metrics = OBJECTIVES[self.settings.objective]
        with quiet_optuna_warnings():
            side = self.pruning_study.ask() if self.pruning_study is not None else None
        if side is not None:
            trial.set_user_attr("pruning_trial", side.number)
        monitor = _Monitor(side if side is not None else trial, "quality" if side is not None else metrics[0],
                           self.reference)
        est = TopicModel(**params, device=self.settings.device, verbose=False)
        start = time.perf_counter()
        try:
            est.fit(self.corpus, on_epoch_end=monitor)
        except (_Stop, TrainingDivergedError) as err:
            reason = monitor.stopped or f"diverged at epoch {getattr(err, 'epoch', monitor.epochs)}"
            return self._stopped(trial, side, monitor, params, reason, time.perf_counter() - start)
        except BaseException:
            if side is not None:
                self.pruning_study.tell(side, state=_state("FAIL"))
            raise
        seconds = time.perf_counter() - start
        scores = validation_quality(est.topic_word_, self.reference)
        scores["perplexity"] = float(est.valid_perplexity_) if est.valid_perplexity_ is not None else float("nan")
        attrs = {**scores, "epochs": est.n_iter_, "best_epoch": est.best_epoch_, "seconds": round(seconds, 3),
                 "batch_size": est.batch_size_, "collapsed": est.collapse_ is not None}
        if self.settings.save_models:
            attrs["model"] = self._save(est, trial.number)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if side is not None:
            self.pruning_study.tell(side, scores["quality"])
        logger.info("trial %d finished: %s -> quality %.4f (coherence %.4f, diversity %.3f), perplexity %.1f; "
                    "%d epochs, %.1f s%s", trial.number, settings_text(params, self.settings.space),
                    scores["quality"], scores["coherence"], scores["diversity"], scores["perplexity"],
                    est.n_iter_, seconds, "; topics collapsed" if attrs["collapsed"] else "")
        values = tuple(scores[m] for m in metrics)
        return values if len(values) > 1 else values[0]

    def _stopped(self, trial: Any, side: Any, monitor: _Monitor, params: dict[str, Any], reason: str,
                 seconds: float) -> float:
        import optuna

        trial.set_user_attr("epochs", monitor.epochs)
        trial.set_user_attr("seconds", round(seconds, 3))
        trial.set_user_attr("stopped", reason)
        if side is not None:
            self.pruning_study.tell(side, state=_state("PRUNED"))
        logger.info("trial %d %s: %s; %d epochs, %.1f s", trial.number, reason,
                    settings_text(params, self.settings.space), monitor.epochs, seconds)
        raise optuna.TrialPruned(reason)

    def _save(self, est: Any, number: int) -> str:
        path = Path(self.settings.study_dir) / "models" / f"trial-{number:04d}"
        est.provenance_ = {"corpus": self.settings.corpus_path, "command": "etm tune", "trial": number}
        pre = (self.corpus.settings or {}).get("preprocessing")
        if pre is not None:  # as etm train does: the model then reads texts as its corpus was prepared
            from etm.preprocessing import Preprocessor

            est.preprocessor_ = Preprocessor.from_settings(pre, vocabulary=est.vocabulary_)
        est.save(path)
        return str(path.resolve())


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]
