""":func:`tune`: set up or continue a study, run its workers, write its report."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from etm.corpus import Corpus, CorpusSource, PreparedCorpus
from etm.options import DEFAULTS, check_value
from etm.tuning.objective import DIRECTIONS, OBJECTIVES, TrialSettings, validation_reference
from etm.tuning.report import chosen_trials, plot_study, remove_dominated_models, trial_rows, write_table
from etm.tuning.runner import (
    PRUNING_SUFFIX,
    WorkerSpec,
    count_trials,
    fail_stale_local_trials,
    load_studies,
    run_worker,
    run_workers,
    trial_epochs,
)
from etm.tuning.space import Choice, Range, check_space, default_space, default_trial, describe, edge_settings
from etm.tuning.storage import (
    StorageSpec,
    check_same_corpus,
    corpus_fingerprint,
    open_storage,
    optuna_module,
)

logger = logging.getLogger(__name__)

__all__ = ["tune", "TuneResult", "load_corpus", "carve_validation"]

PRUNERS = ("median", "halving", "none")


@dataclass
class TuneResult:
    """What :func:`tune` returns.

    Attributes
    ----------
    study : optuna.Study
        The study (in its storage: continue it with ``resume=True``).
    chosen : list of optuna.trial.FrozenTrial
        The Pareto front of the finished trials (two objectives), or the best
        trial (one objective), by trial number.
    rows : list of dict
        The table of every trial, as written to ``trials.csv`` / ``trials.json``.
    files : dict of str -> Path
        ``trials_csv``, ``trials_json``, ``pareto``, ``quality_by_k``.
    counts : dict of str -> int
        Trials by state: ``complete``, ``pruned``, ``failed``, ``running``, ``waiting``.
    edges : dict of int -> dict of str -> str
        For each chosen trial (by number), its searched settings at an end of
        their range, ``"low"`` or ``"high"`` (:func:`~etm.tuning.space.edge_settings`):
        the best may lie beyond, so widen those ranges.
    space : dict of str -> spec
        The searched space (the defaults with ``space``'s changes).
    """

    study: Any
    chosen: list[Any]
    rows: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    edges: dict[int, dict[str, str]] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)

    def chosen_models(self) -> list[str]:
        """Directories of the chosen trials' models saved on this machine."""
        return [t.user_attrs["model"] for t in self.chosen
                if t.user_attrs.get("model") and Path(t.user_attrs["model"]).is_dir()]


# -- the corpus --------------------------------------------------------------------------------
def carve_validation(corpus: CorpusSource, valid_size: float, seed: int) -> PreparedCorpus:
    """The corpus in memory with ``valid_size`` of its training documents moved to the validation split.

    For corpora whose validation split is too small for a stable coherence
    (the authors' 20 Newsgroups has 100 validation documents); the drawn
    documents join the existing validation documents. Seeded: every worker
    and every resumed session draws the same documents.
    """
    check_value("valid_size", valid_size, "float", low=0.0, high=1.0, low_open=True, high_open=True)
    prepared = corpus.to_prepared()
    n = prepared.train.n_docs
    order = np.random.default_rng(seed).permutation(n)
    n_valid = int(round(valid_size * n))
    if n_valid == 0 or n_valid == n:
        raise ValueError(f"valid_size={valid_size} of {n} training documents leaves no validation or no training "
                         "documents")
    carved = prepared.train.subset(np.sort(order[:n_valid]))
    valid = carved if prepared.valid is None or prepared.valid.n_docs == 0 else Corpus(
        sp.vstack([prepared.valid.counts, carved.counts], format="csr"), prepared.vocabulary)
    carved_corpus = PreparedCorpus.from_splits(prepared.train.subset(np.sort(order[n_valid:])), valid, None,
                                               random_state=seed, settings=prepared.settings)
    # the test split is untouched, halves included (the authors' 20NG ships its own): test scores stay comparable
    test_skipped = {k: v for k, v in prepared.n_unsplittable.items() if k == "test"}
    return replace(carved_corpus, test=prepared.test, test_halves=prepared.test_halves,
                   n_unsplittable={**carved_corpus.n_unsplittable, **test_skipped})


def load_corpus(path: str, valid_size: float | None = None, seed: int = 0) -> CorpusSource:
    """A prepared corpus directory (any layout :func:`etm.shards.open_corpus` reads), with its validation carve."""
    from etm.shards import is_corpus_dir, open_corpus

    if not Path(path).exists():
        raise ValueError(f"corpus {path} does not exist")
    if not is_corpus_dir(path):
        raise ValueError(f"{path} is not a prepared corpus directory: prepare it first (etm prepare {path} -o CORPUS)")
    corpus = open_corpus(path)
    return corpus if valid_size is None else carve_validation(corpus, valid_size, seed)


# -- checks ---------------------------------------------------------------------------------------
def _merged_space(space: Mapping[str, Any] | None, seed: int) -> dict[str, Any]:
    merged: dict[str, Any] = default_space()
    for name, spec in (space or {}).items():
        if spec is None:
            merged.pop(name, None)
        else:
            merged[name] = spec
    merged.setdefault("random_state", seed)
    check_space(merged)
    return merged


def _check_k(space: Mapping[str, Any], n_words: int) -> None:
    spec = space.get("n_topics", DEFAULTS["n_topics"])
    high = spec.high if isinstance(spec, Range) else max(spec.values) if isinstance(spec, Choice) else spec
    if high > n_words:
        raise ValueError(f"n_topics={spec} reaches K={high}, more than the {n_words} words of the corpus's "
                         f"vocabulary; keep K at most {n_words} (e.g. --num-topics {min(10, n_words)}:{n_words})")


def _check_arguments(objective: str, n_trials: int, n_jobs: int, timeout: float | None, pruner: str) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective={objective!r} is not one of {list(OBJECTIVES)}")
    if pruner not in PRUNERS:
        raise ValueError(f"pruner={pruner!r} is not one of {list(PRUNERS)}")
    check_value("n_trials", n_trials, "int", low=1)
    check_value("n_jobs", n_jobs, "int", low=1)
    check_value("timeout", timeout, "float", nullable=True, low=0.0, low_open=True)


# -- the study ------------------------------------------------------------------------------------
def _open_study(spec: WorkerSpec, corpus_record: dict[str, Any], objective: str, resume: bool) -> Any:
    """Create the study, or load it (resume) after checking its corpus and objective."""
    optuna = optuna_module()
    storage = open_storage(spec.storage)
    names = set(optuna.get_all_study_names(storage))
    where = spec.storage.describe()
    if spec.study_name not in names:
        try:
            return _create_study(spec, storage, corpus_record, objective)
        except optuna.exceptions.DuplicatedStudyError:  # another machine created it just now: load it below
            pass
    study = optuna.load_study(study_name=spec.study_name, storage=storage)
    if not resume:
        raise ValueError(f"{where} already holds the study {spec.study_name!r} with {len(study.trials)} trials; "
                         "continue it with --resume (resume=True), or give another study directory or "
                         "--study-name")
    check_same_corpus(spec.study_name, where, study.user_attrs.get("corpus"), corpus_record)
    saved = study.user_attrs.get("objective")
    if saved is not None and saved != objective:
        raise ValueError(f"study {spec.study_name!r} in {where} optimises {saved!r}, not {objective!r}; resume "
                         f"it with --objective {saved}, or start another study")
    if study.user_attrs.get("space") not in (None, describe(spec.trial.space)):
        logger.warning("the search space differs from the one study %r started with (%s); the sampler learns "
                       "from the earlier trials whose settings lie in the new space", spec.study_name,
                       study.user_attrs.get("space"))
    return study


def _create_study(spec: WorkerSpec, storage: Any, corpus_record: dict[str, Any], objective: str) -> Any:
    """A new study with its record (corpus, objective, space), its companion pruning study, the defaults queued."""
    optuna = optuna_module()
    if spec.multi:  # first: whoever finds the study finds its companion
        optuna.create_study(study_name=spec.study_name + PRUNING_SUFFIX, storage=storage, direction="maximize",
                            load_if_exists=True)
    study = optuna.create_study(study_name=spec.study_name, storage=storage,
                                directions=[DIRECTIONS[m] for m in OBJECTIVES[objective]])
    from etm._version import __version__

    for key, value in (("corpus", corpus_record), ("objective", objective),
                       ("space", describe(spec.trial.space)), ("etm_version", __version__)):
        study.set_user_attr(key, value)
    study.enqueue_trial(default_trial(spec.trial.space), user_attrs={"start": "the defaults of etm.options"})
    return study


def _counts(study: Any) -> dict[str, int]:
    return {name.lower() if name != "FAIL" else "failed": count_trials(study, name)
            for name in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}


def tune(
    corpus: CorpusSource | str | os.PathLike[str],
    study_dir: str | os.PathLike[str],
    *,
    n_trials: int = 30,
    space: Mapping[str, Any] | None = None,
    objective: str = "both",
    pruner: str = "halving",
    timeout: float | None = None,
    n_jobs: int = 1,
    storage: str | None = None,
    study_name: str = "etm-tune",
    resume: bool = False,
    valid_size: float | None = None,
    seed: int = DEFAULTS["random_state"],
    device: str = "auto",
    threads: int | None = None,
    keep_models: bool = False,
    verbose: bool = False,
) -> TuneResult:
    """Search K and the quality levers of the ETM with Optuna; returns the Pareto front (or the best trial).

    Parameters
    ----------
    corpus : CorpusSource or path
        A prepared corpus (in memory or sharded) or its directory. Trials
        are scored on its validation split (see :mod:`etm.tuning.objective`).
    study_dir : path
        Where the study's journal (the embedded storage), the chosen models,
        the table of trials and the figures go.
    n_trials : int, default 30
        Finished (complete or pruned) trials the study should hold, counting
        those of earlier sessions and of other workers.
    space : mapping, optional
        Changes to :func:`etm.tuning.space.default_space`: option name ->
        :class:`Range`, :class:`Choice`, a fixed value (e.g. ``"epochs": 30``),
        or None to leave a searched option at its default.
    objective : {"both", "quality", "perplexity"}
        Two objectives (validation quality up, validation perplexity down;
        the result is the Pareto front) or one.
    pruner : {"halving", "median", "none"}
        Optuna's SuccessiveHalvingPruner (the default: most trials stop
        after an eighth of the epochs, a third of the rest after three
        eighths), MedianPruner, or none.
    timeout : float, optional
        Seconds after which no new trial starts (running ones finish).
    n_jobs : int, default 1
        Worker processes on this machine sharing the study.
    storage : str, optional
        A database URL Optuna supports (``postgresql://...``): workers on
        several machines then share the study. Default: the journal file in
        ``study_dir``.
    study_name : str
        The study's name in its storage.
    resume : bool
        Continue (or, with a shared storage, join) the study of that name;
        without it an existing study is refused.
    valid_size : float, optional
        Move this share of the training documents to the validation split
        first (:func:`carve_validation`), for corpora with few validation
        documents.
    seed : int
        Seed of the sampler and of every trial's training (``random_state``
        unless ``space`` sets it).
    device, threads
        Where trials train; threads per worker (default: the CPUs shared out).
    keep_models : bool
        Keep every finished trial's model, not only the chosen ones.
    verbose : bool
        A progress bar over the trials.

    Returns
    -------
    TuneResult
    """
    optuna_module()
    _check_arguments(objective, n_trials, n_jobs, timeout, pruner)
    full_space = _merged_space(space, seed)
    path = None if isinstance(corpus, CorpusSource) else str(Path(corpus).resolve())
    if path is not None:
        loader: Any = functools.partial(load_corpus, path, valid_size, seed)
        corpus = loader()
    else:
        corpus = corpus if valid_size is None else carve_validation(corpus, valid_size, seed)  # type: ignore[arg-type]
        loader = corpus
    assert isinstance(corpus, CorpusSource)
    _check_k(full_space, len(corpus.vocabulary))
    validation_reference(corpus)  # refuses a corpus without validation documents before anything is written
    record = {"path": path, "valid_size": valid_size, **corpus_fingerprint(corpus)}
    root = Path(study_dir)
    spec = WorkerSpec(
        study_name=study_name, storage=StorageSpec(str(root), storage),
        trial=TrialSettings(objective, full_space, device, str(root), corpus_path=path),
        n_trials=n_trials, corpus=loader, pruner=pruner, seed=seed, threads=threads,
        multi=len(OBJECTIVES[objective]) > 1,
        deadline=None if timeout is None else time.time() + timeout)
    study = _open_study(spec, record, objective, resume)
    spec.extra["n_existing"] = len(study.trials)
    study, pruning = load_studies(spec, trial_epochs(full_space, corpus))
    fail_stale_local_trials(study, pruning)
    logger.info("study %r in %s: %d of %d trials finished; searching %s", study_name, spec.storage.describe(),
                count_trials(study, "COMPLETE", "PRUNED"), n_trials,
                ", ".join(f"{k} {v}" for k, v in describe(full_space).items()))
    try:
        _run(spec, corpus, study, n_jobs, verbose)
    except KeyboardInterrupt:
        _finish(spec, study, pruning, objective, keep_models)
        raise
    return _finish(spec, study, pruning, objective, keep_models)


def _run(spec: WorkerSpec, corpus: CorpusSource, study: Any, n_jobs: int, verbose: bool) -> None:
    from tqdm.auto import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    finished = functools.partial(count_trials, study, "COMPLETE", "PRUNED")
    with logging_redirect_tqdm(), tqdm(total=spec.n_trials, initial=min(finished(), spec.n_trials), unit="trial",
                                       desc="etm tune", disable=not verbose) as bar:
        def progress(_: Any = None) -> None:
            done = min(finished(), spec.n_trials)
            if done != bar.n:
                bar.update(done - bar.n)

        if n_jobs == 1:
            if spec.threads is not None:
                from etm.device import set_threads

                set_threads(spec.threads)
            spec_here = WorkerSpec(**{**spec.__dict__, "corpus": corpus})
            run_worker(spec_here, on_trial=progress)
            return
        codes = run_workers(spec, n_jobs, progress)
    failed = [i for i, code in enumerate(codes) if code != 0]
    if failed and finished() < spec.n_trials:
        raise RuntimeError(f"worker process(es) {failed} stopped with an error (exit codes "
                           f"{[codes[i] for i in failed]}); see the log above. Finished trials are kept: continue "
                           "with --resume")


def _finish(spec: WorkerSpec, study: Any, pruning: Any, objective: str, keep_models: bool) -> TuneResult:
    """Fail trials of workers that died, pick the chosen trials, prune models, write table and figures."""
    fail_stale_local_trials(study, pruning)
    chosen = chosen_trials(study)
    if not keep_models:
        removed = remove_dominated_models(study, chosen)
        if removed:
            logger.debug("removed %d models of dominated trials", removed)
    rows = trial_rows(study, objective, chosen)
    root = Path(spec.trial.study_dir)
    root.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = write_table(rows, root)
    files = {"trials_csv": csv_path, "trials_json": json_path, **plot_study(rows, root)}
    counts = _counts(study)
    logger.info("study %r: %d complete, %d pruned, %d failed; chosen: %s", spec.study_name, counts["complete"],
                counts["pruned"], counts["failed"], ", ".join(f"#{t.number}" for t in chosen) or "none yet")
    edges = {t.number: edge_settings(t.params, spec.trial.space) for t in chosen}
    for number, edge in edges.items():
        if edge:
            logger.info("chosen trial #%d is at the edge of the search space (%s): the best may lie beyond; "
                           "widen those ranges (--num-topics, --param NAME=LOW:HIGH) and --resume", number,
                           edge_text(edge, spec.trial.space))
    return TuneResult(study=study, chosen=chosen, rows=rows, files=files, counts=counts, edges=edges,
                      space=dict(spec.trial.space))


def edge_text(edge: Mapping[str, str], space: Mapping[str, Any]) -> str:
    """``n_topics at the low end of 10:100:log, ...``: :attr:`TuneResult.edges` of one trial, in words."""
    return ", ".join(f"{name} at the {end} end of {space[name]}" for name, end in edge.items())
