"""How many topics, and with which settings? A search over K and the quality levers with Optuna.

:func:`tune` runs an Optuna study on a prepared corpus: each trial trains a
:class:`etm.TopicModel` with settings drawn from the search space
(:mod:`etm.tuning.space`: K, KL weight, background term, encoder token
drop, learning rate by default) and is scored on the *validation* split
(topic quality = NPMI coherence over the validation documents x diversity,
and document-completion perplexity; :mod:`etm.tuning.objective`). Poor trials
are pruned from their per-epoch validation curves. The study lives in a
journal file in the study directory, or in any database Optuna supports, so
it survives Ctrl-C and crashes (``resume=True``) and workers on several
processes or machines can share it (:mod:`etm.tuning.storage`,
:mod:`etm.tuning.runner`). The result is the Pareto front of the two
objectives (or the best trial of one), whose models are saved as ordinary
etm models, plus a table of trials and two figures (:mod:`etm.tuning.report`).

Needs Optuna (``pip install 'etm[tune]'``); the command line is ``etm tune``.

Examples
--------
>>> from etm.tuning import tune, Range                                    # doctest: +SKIP
>>> result = tune("runs/20ng-corpus", "runs/20ng-study", n_trials=20,
...               space={"n_topics": Range(10, 60), "epochs": 30})      # doctest: +SKIP
>>> [(t.number, t.params["n_topics"], t.values) for t in result.chosen]  # doctest: +SKIP
>>> TopicModel.load(result.chosen_models()[0])                           # doctest: +SKIP
"""

from etm.tuning.objective import OBJECTIVES, validation_quality
from etm.tuning.search import TuneResult, carve_validation, load_corpus, tune
from etm.tuning.space import Choice, Range, default_space, parse_spec

__all__ = [
    "tune",
    "TuneResult",
    "Range",
    "Choice",
    "default_space",
    "parse_spec",
    "OBJECTIVES",
    "validation_quality",
    "carve_validation",
    "load_corpus",
]
