"""What a study leaves in its directory: the table of trials, the chosen models, two figures.

* ``trials.csv`` and ``trials.json``: one row per trial (number, state,
  settings, validation quality, coherence, diversity and perplexity, epochs,
  seconds, why it stopped early, whether it is chosen, its model);
* ``models/trial-NNNN/``: the chosen trials' models, ordinary etm model
  directories (``TopicModel.load``, ``etm topics``). Every finished trial
  saves its model; a model that another finished trial dominates (better or
  equal on every objective, better on one) can never be chosen again and is
  deleted, unless ``keep_models``;
* ``pareto.png``: validation quality against validation perplexity of the
  finished trials, the Pareto front joined; ``quality_by_k.png``: validation
  quality against K (pruned trials hollow).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from etm._io import atomic_write_text
from etm.tuning.objective import OBJECTIVES

logger = logging.getLogger(__name__)

__all__ = ["chosen_trials", "trial_rows", "write_table", "plot_study", "remove_dominated_models"]

#: Columns of ``trials.csv`` after the settings.
METRIC_COLUMNS = ("quality", "coherence", "diversity", "perplexity", "epochs", "best_epoch", "seconds",
                  "batch_size", "collapsed", "stopped", "chosen", "model", "host", "retry_of")


def chosen_trials(study: Any) -> list[Any]:
    """The finished trials no other finished trial dominates (the best one for one objective), by number."""
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    return sorted(study.best_trials, key=lambda t: t.number)


def trial_rows(study: Any, objective: str, chosen: Sequence[Any]) -> list[dict[str, Any]]:
    """One dict per trial (every state), settings first, then :data:`METRIC_COLUMNS`."""
    chosen_numbers = {t.number for t in chosen}
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        row.update(t.params)
        for key in METRIC_COLUMNS:
            row[key] = attrs.get(key)
        if t.values is not None:
            row.update(zip(OBJECTIVES[objective], t.values))
        row["chosen"] = t.number in chosen_numbers
        row["retry_of"] = t.system_attrs.get("failed_trial")
        if row["model"] and not Path(row["model"]).is_dir():
            row["model"] = None
        rows.append(row)
    return rows


def write_table(rows: Sequence[dict[str, Any]], study_dir: Path) -> tuple[Path, Path]:
    """``trials.csv`` and ``trials.json`` in ``study_dir`` (atomically)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in columns})
    atomic_write_text(study_dir / "trials.csv", buf.getvalue())
    atomic_write_text(study_dir / "trials.json", json.dumps(list(rows), indent=1))
    return study_dir / "trials.csv", study_dir / "trials.json"


def remove_dominated_models(study: Any, chosen: Sequence[Any]) -> int:
    """Delete the saved models of finished trials outside ``chosen``; they can never be chosen again."""
    from optuna.trial import TrialState

    keep = {t.number for t in chosen}
    removed = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        path = t.user_attrs.get("model")
        if t.number not in keep and path and Path(path).is_dir():
            shutil.rmtree(path)
            removed += 1
    return removed


def plot_study(rows: Sequence[dict[str, Any]], study_dir: Path) -> dict[str, Path]:
    """``pareto.png`` and ``quality_by_k.png`` from the trial rows; {} without matplotlib."""
    try:
        from etm.plots import _figure, _save
    except ImportError:  # pragma: no cover - plots are an extra
        return {}
    done = [r for r in rows if r["state"] == "COMPLETE" and r.get("quality") is not None]
    try:
        fig = _figure(figsize=(6, 4.5))
    except ImportError:
        logger.warning("matplotlib is not installed: no figures (pip install 'etm[plots]')")
        return {}
    ax = fig.add_subplot()
    front = sorted((r for r in done if r["chosen"]), key=lambda r: r["perplexity"])
    ax.scatter([r["perplexity"] for r in done], [r["quality"] for r in done], color="0.6", label="finished trials")
    ax.plot([r["perplexity"] for r in front], [r["quality"] for r in front], "o-", color="C3", label="chosen")
    for r in front:
        ax.annotate(f"#{r['trial']} K={r.get('n_topics', '?')}", (r["perplexity"], r["quality"]),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("validation perplexity (lower is better)")
    ax.set_ylabel("validation topic quality (higher is better)")
    ax.set_title("trials and their Pareto front")
    ax.legend(loc="best", fontsize=8)
    out = {"pareto": _save(fig, study_dir / "pareto.png")}
    fig = _figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    with_k = [r for r in done if r.get("n_topics") is not None]
    ax.scatter([r["n_topics"] for r in with_k], [r["quality"] for r in with_k], color="C0", label="finished")
    best = [r for r in with_k if r["chosen"]]
    ax.scatter([r["n_topics"] for r in best], [r["quality"] for r in best], color="C3", label="chosen")
    pruned = [r for r in rows if r["state"] == "PRUNED" and r.get("n_topics") is not None]
    floor = min([r["quality"] for r in with_k] + [0.0])  # pruned trials have no final quality: a row at the bottom
    ax.scatter([r["n_topics"] for r in pruned], [floor] * len(pruned), marker="|", color="0.5",
               label="pruned (not scored)")
    ax.set_xlabel("K (number of topics)")
    ax.set_ylabel("validation topic quality")
    ax.set_title("validation quality against K")
    ax.legend(loc="best", fontsize=8)
    out["quality_by_k"] = _save(fig, study_dir / "quality_by_k.png")
    return out
