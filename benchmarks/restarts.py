"""What ``n_init`` buys: the topic quality of the restart chosen on validation, against one run.

Why this script exists: ``TopicModel(n_init=n)`` / ``etm train --n-init n`` trains n networks from different
seeds and keeps the one whose topics score best on the validation documents (:mod:`etm.validation`); it costs
n times the training, so it must be shown to choose well. For each K of ``--k`` the script trains ``--pool``
single runs of the defaults, the seeds of runs 0, 1, ... of ``n_init`` from ``--seed``
(:func:`etm.estimator.restart_seed`; with learned embeddings a single run from that seed is exactly that
restart), and scores each

* on validation (what ``n_init`` sees): the small-reference estimate over the validation documents;
* as the README's tables do: NPMI coherence of the top 10 words over the training documents x diversity of the
  top 25 ("quality"), and the authors' NPMI over all 7,531 test documents x diversity ("held-out quality");
  test perplexity. None of these is used to choose.

Then, over every ``--n-init``-subset of the pool (all C(pool, n) of them), the run validation would keep:
the table gives one run's mean quality, the mean quality of the kept run (what ``n_init`` gives in expectation),
and the best of each subset by quality itself (what a perfect choice would give). The authors' corpus has only
100 validation documents; ``--valid-size`` (default 0.1) moves a seeded 10% of the training documents to the
validation split first, as ``benchmarks/tune.py`` does. ``--corpus DIR`` runs on a corpus ``etm prepare`` wrote
instead (e.g. ``make demo``'s ``runs/20ng-corpus``), with its own validation split.

Usage::

    python benchmarks/restarts.py [--data ../shared/data] [--k 10,25,50] [--pool 6] [--n-init 3] [--seed 2019]
                                  [--threads 1] [--json-out runs/restarts.jsonl] [--corpus DIR]

Rows already in ``--json-out`` (same K and seed) are read back instead of retrained, so a stopped run continues.
Each row also keeps the run's validation quality and perplexity after every epoch (``curve``), to study how
early a run's final standing shows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import default_data  # noqa: E402
from tune import test_reference  # noqa: E402

from etm.corpus import open_corpus  # noqa: E402
from etm.embeddings import clear_corpus_skipgram_cache  # noqa: E402
from etm.estimator import TopicModel, restart_seed  # noqa: E402
from etm.metrics import top_word_indices, topic_coherence, topic_diversity  # noqa: E402
from etm.readers import read_authors_format  # noqa: E402
from etm.training import get_topic_word  # noqa: E402
from etm.tuning import carve_validation  # noqa: E402
from etm.validation import validation_quality, validation_reference  # noqa: E402


def score(est: TopicModel, corpus: Any, references: dict[str, Any]) -> dict[str, float]:
    """Validation quality (what n_init sees), then the README's quality and held-out quality (never chosen on)."""
    top10, top25 = top_word_indices(est.topic_word_, 10), top_word_indices(est.topic_word_, 25)
    diversity = topic_diversity(top25)
    return {"valid_quality": validation_quality(est.topic_word_, references["valid"])["quality"],
            "quality": topic_coherence(top10, references["train"]) * diversity,
            "heldout_quality": topic_coherence(top10, references["test"]) * diversity,
            "diversity": diversity, "test_perplexity": est.perplexity(corpus)}


def pool_rows(corpus: Any, k: int, seeds: list[int], references: dict[str, Any], done: dict[tuple[int, int], dict],
              json_out: Path | None) -> list[dict[str, Any]]:
    rows = []
    for i, seed in enumerate(seeds):
        if (k, seed) in done:
            rows.append(done[(k, seed)])
            continue
        clear_corpus_skipgram_cache()
        est = TopicModel(k, random_state=seed, device="cpu")
        curve: list[list[float]] = []

        def record(epoch: int, model: Any, record: dict[str, Any], curve: list = curve) -> None:  # not timed
            curve.append([epoch, validation_quality(get_topic_word(model), references["valid"])["quality"],
                          record.get("valid_perplexity", float("nan"))])

        start = time.perf_counter()
        est.fit(corpus, on_epoch_end=record)
        row = {"k": k, "run": i, "seed": seed, **score(est, corpus, references),
               "seconds": time.perf_counter() - start, "epochs": est.n_iter_, "best_epoch": est.best_epoch_,
               "curve": curve}
        print(f"  K={k} run {i} (seed {seed}): validation {row['valid_quality']:.4f}, quality {row['quality']:.4f}, "
              f"held-out {row['heldout_quality']:.4f}, test perplexity {row['test_perplexity']:.0f}, "
              f"{row['seconds']:.0f} s", flush=True)
        if json_out is not None:
            with json_out.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows


def summarise(rows: list[dict[str, Any]], n_init: int) -> dict[str, Any]:
    """One run's mean, the validation-chosen run's mean over every n-subset, and the perfect choice's."""
    subsets = list(itertools.combinations(rows, n_init))
    kept = [max(s, key=lambda r: r["valid_quality"]) for s in subsets]
    out: dict[str, Any] = {"subsets": len(subsets)}
    for metric in ("quality", "heldout_quality", "test_perplexity"):
        values = [r[metric] for r in rows]
        out[metric] = {"one": statistics.mean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                       "kept": statistics.mean(r[metric] for r in kept),
                       "best": statistics.mean(max(r[metric] for r in s) for s in subsets)}
    out["hits"] = sum(k is max(s, key=lambda r: r["quality"]) for k, s in zip(kept, subsets))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--k", default="10,25,50")
    parser.add_argument("--pool", type=int, default=6, help="single runs per K (restarts 0 .. pool-1)")
    parser.add_argument("--n-init", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2019, help="random_state whose restarts make the pool")
    parser.add_argument("--valid-size", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json-out", type=Path, default=None, help="append each run here; read back on restart")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a corpus directory from etm prepare, with its own validation split (default: the "
                             "authors' 20NG with --valid-size carved)")
    args = parser.parse_args()
    if not 1 < args.n_init <= args.pool:
        parser.error("--n-init must be more than 1 and at most --pool")
    torch.set_num_threads(args.threads)
    if args.corpus is None:
        corpus = carve_validation(read_authors_format(args.data / "20ng-etm"), args.valid_size, args.seed)
        name = "20NG"
    else:
        corpus, name = open_corpus(args.corpus).to_prepared(), str(args.corpus)
    references = {"valid": validation_reference(corpus), "train": corpus.train.counts.tocsr(),
                  "test": test_reference(corpus)}
    done: dict[tuple[int, int], dict] = {}
    if args.json_out is not None and args.json_out.is_file():
        for line in args.json_out.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[(row["k"], row["seed"])] = row
    seeds = [restart_seed(args.seed, i) for i in range(args.pool)]
    ks = [int(k) for k in args.k.split(",")]
    print(f"{name}, {corpus.n_docs('valid')} validation documents; the defaults, {args.pool} runs per K, n_init = "
          f"{args.n_init}; {args.threads} thread(s)", flush=True)
    results = {k: summarise(pool_rows(corpus, k, seeds, references, done, args.json_out), args.n_init) for k in ks}
    print(f"\n| K | one run: quality ± sd | n_init = {args.n_init}, kept on validation | best of {args.n_init} by "
          "quality | held-out quality: one run / kept | test perplexity: one run / kept | kept = best |")
    print("|---|---|---|---|---|---|---|")
    for k, r in results.items():
        q, h, p = r["quality"], r["heldout_quality"], r["test_perplexity"]
        print(f"| {k} | {q['one']:.3f} ± {q['sd']:.3f} | {q['kept']:.3f} ({q['kept'] / q['one'] - 1:+.1%}) | "
              f"{q['best']:.3f} | {h['one']:.3f} / {h['kept']:.3f} | {p['one']:.0f} / {p['kept']:.0f} | "
              f"{r['hits']} of {r['subsets']} |")


if __name__ == "__main__":
    main()
