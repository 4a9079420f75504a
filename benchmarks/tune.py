"""``etm tune`` against a grid over K with the default settings, on the authors' 20 Newsgroups.

Why this script exists: a search is worth its machinery only if it finds better settings than the loop users
write by hand (train K = 10, 20, ..., 100 with the defaults, keep the best) for less compute. Both sides
train on the same corpus with the same epochs and seed, and are scored the same way on the validation split
(:func:`etm.tuning.validation_quality`: NPMI coherence of the top 10 words over the validation documents x
diversity of the top 25; document-completion perplexity on the validation halves). The authors' corpus has
only 100 validation documents, too few for a stable coherence, so ``--valid-size`` (default 0.1) moves a
seeded 10% of the training documents to the validation split first, for both sides.

* grid: one ``TopicModel(K)`` per K of ``--grid`` with the defaults of ``etm.options``;
* study: :func:`etm.tuning.tune` with the default search space (K in 10..100, KL weight, background term,
  encoder token drop, learning rate) and the default successive-halving pruning, ``--trials`` trials; one
  study per ``--objective`` (the default two objectives ``both``, whose best quality lies on its Pareto
  front, or ``quality`` alone).

Compute is counted the same way for both: the seconds of every ``fit`` (a trial's includes its per-epoch
validation and pruning checks), and the epochs trained. The study's wall time (with Optuna's bookkeeping and
saving the models) is printed too. Nothing is chosen on the test split; to check whether validation chose
well, each grid model and each study's best model are also scored over all 7,531 test documents (the authors'
NPMI of the top 10 words there x diversity, "held-out quality"): a reference large enough for the authors' NPMI,
which the validation split is not (see docs/guide/tuning.md).

Usage::

    python benchmarks/tune.py [--data ../shared/data] [--epochs 20] [--trials 30] [--threads 1]
                              [--grid 10,20,30,40,50,60,70,80,90,100] [--out runs/tune-bench]
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import default_data  # noqa: E402

from etm.estimator import TopicModel  # noqa: E402
from etm.metrics import top_word_indices, topic_coherence, topic_diversity  # noqa: E402
from etm.options import DEFAULTS  # noqa: E402
from etm.readers import read_authors_format  # noqa: E402
from etm.tuning import carve_validation, tune, validation_quality  # noqa: E402
from etm.tuning.objective import validation_reference  # noqa: E402
from etm.tuning.space import default_space  # noqa: E402


def heldout_quality(topic_word: Any, test: Any) -> float:
    """The authors' NPMI of the top 10 words over all test documents x diversity: for checking, never choosing."""
    return topic_coherence(top_word_indices(topic_word, 10), test) * topic_diversity(top_word_indices(topic_word, 25))


def test_reference(corpus: Any) -> Any:
    first, second = corpus.test_halves
    return (first + second).tocsr()


def run_grid(corpus: Any, grid: list[int], epochs: int, seed: int) -> list[dict[str, Any]]:
    reference, test = validation_reference(corpus), test_reference(corpus)
    rows = []
    for k in grid:
        est = TopicModel(k, epochs=epochs, random_state=seed, device="cpu")
        start = time.perf_counter()
        est.fit(corpus)
        seconds = time.perf_counter() - start
        row = {"K": k, **validation_quality(est.topic_word_, reference), "perplexity": est.valid_perplexity_,
               "epochs": est.n_iter_, "seconds": seconds, "heldout_quality": heldout_quality(est.topic_word_, test)}
        rows.append(row)
        print(f"  grid K={k:3d}: quality {row['quality']:.4f} (coherence {row['coherence']:.4f}, diversity "
              f"{row['diversity']:.3f}), perplexity {row['perplexity']:.1f}, {seconds:.1f} s; held-out quality "
              f"{row['heldout_quality']:.4f}", flush=True)
    return rows


def run_study(corpus: Any, out: Path, trials: int, epochs: int, seed: int, pruner: str, threads: int,
              objective: str) -> dict[str, Any]:
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    result = tune(corpus, out, n_trials=trials, space={"epochs": epochs},
                  objective=objective, pruner=pruner, seed=seed, device="cpu", threads=threads)
    wall = time.perf_counter() - start
    rows = result.rows
    done = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(done, key=lambda r: r["quality"])
    if best.get("model"):
        best["heldout_quality"] = heldout_quality(TopicModel.load(best["model"], device="cpu").topic_word_,
                                                  test_reference(corpus))
    return {"rows": rows, "best": best, "wall": wall, "front": [t.number for t in result.chosen],
            "seconds": sum(r["seconds"] or 0.0 for r in rows), "epochs": sum(r["epochs"] or 0 for r in rows),
            "pruned": sum(r["state"] == "PRUNED" for r in rows)}


def _first_reaching(rows: list[dict[str, Any]], target: float) -> tuple[int, int, float] | None:
    """The first trial (in order) whose validation quality reaches ``target``, with the epochs and seconds so far."""
    epochs, seconds = 0, 0.0
    for row in rows:
        epochs += row["epochs"] or 0
        seconds += row["seconds"] or 0.0
        if row["state"] == "COMPLETE" and row["quality"] >= target:
            return row["trial"], epochs, seconds
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help="epochs of every run, both sides")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--grid", default="10,20,30,40,50,60,70,80,90,100")
    parser.add_argument("--valid-size", type=float, default=0.1)
    parser.add_argument("--pruner", default="halving", choices=["halving", "median", "none"])
    parser.add_argument("--objective", default="both",
                        help="the study's objectives, one study each, comma-separated (e.g. both,quality)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=DEFAULTS["random_state"])
    parser.add_argument("--out", type=Path, default=Path("runs/tune-bench"))
    parser.add_argument("--json-out", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("etm.tuning").setLevel(logging.INFO)
    logging.getLogger("etm.estimator").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    corpus = carve_validation(read_authors_format(args.data / "20ng-etm"), args.valid_size, args.seed)
    print(f"authors' 20NG: {corpus.n_docs('train')} training, {corpus.n_docs('valid')} validation documents; "
          f"{args.epochs} epochs per run, {args.threads} thread(s)", flush=True)
    grid = [int(k) for k in args.grid.split(",")]
    print("grid (default settings):", flush=True)
    grid_rows = run_grid(corpus, grid, args.epochs, args.seed)
    studies = {}
    for objective in args.objective.split(","):
        print(f"study (objective {objective}):", flush=True)
        studies[objective] = run_study(corpus, args.out / objective, args.trials, args.epochs, args.seed,
                                       args.pruner, args.threads, objective)

    g_best = max(grid_rows, key=lambda r: r["quality"])
    g_seconds, g_epochs = sum(r["seconds"] for r in grid_rows), sum(r["epochs"] for r in grid_rows)
    print("\n| search | runs | epochs trained | fit seconds | best validation quality | its K and settings | "
          "its validation perplexity | its held-out quality |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| grid K={grid[0]}..{grid[-1]}, defaults | {len(grid_rows)} | {g_epochs} | {g_seconds:.0f} | "
          f"{g_best['quality']:.4f} | K={g_best['K']}, defaults | {g_best['perplexity']:.1f} | "
          f"{g_best['heldout_quality']:.4f} |")
    for objective, study in studies.items():
        s_best = study["best"]
        settings = {k: s_best[k] for k in default_space() if k in s_best}  # the searched options
        text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in settings.items())
        print(f"| study, objective {objective}, {args.pruner} pruning | {len(study['rows'])} ({study['pruned']} "
              f"pruned) | {study['epochs']} | {study['seconds']:.0f} (wall {study['wall']:.0f}) | "
              f"{s_best['quality']:.4f} | {text} | {s_best['perplexity']:.1f} | "
              f"{s_best.get('heldout_quality', float('nan')):.4f} |")
    h_best = max(grid_rows, key=lambda r: r["heldout_quality"])
    print(f"the grid's best held-out quality: K={h_best['K']} ({h_best['heldout_quality']:.4f}); validation chose "
          f"K={g_best['K']}")
    for objective, study in studies.items():
        first = _first_reaching(study["rows"], g_best["quality"])
        if first is not None:
            print(f"study ({objective}) first reached the grid's best validation quality with trial {first[0]}, "
                  f"after {first[1]} epochs ({first[1] / g_epochs:.0%} of the grid's) and {first[2]:.0f} fit "
                  f"seconds ({first[2] / g_seconds:.0%})")
        reached = study["best"]["quality"] >= g_best["quality"]
        cheaper = study["seconds"] < g_seconds and study["epochs"] < g_epochs
        print(f"study ({objective}) reaches the grid's best validation quality: {reached}; with less compute: "
              f"{cheaper} ({study['epochs'] / g_epochs:.0%} of the epochs, {study['seconds'] / g_seconds:.0%} of "
              "the fit seconds)")
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    if args.json_out:
        args.json_out.write_text(json.dumps({"grid": grid_rows, "studies": studies, "args": vars(args)}, indent=1,
                                            default=str))


if __name__ == "__main__":
    main()
