"""Coherence of benchmark topics over documents no model saw, next to the benchmark's training-document coherence.

Why this script exists: the peers benchmark (``benchmarks/peers.py``) scores coherence as NPMI over the
*training* documents, as the ETM paper does. A model could lead there by choosing rare words that happen to
share training documents. This script takes the rows ``peers.py`` stored (each keeps its topics' top 10 words)
and scores the same top words over the test documents of the same corpus (each test document's two halves
together), a reference none of the models trained on; diversity is the row's own. Nothing is retrained.

    python benchmarks/heldout_coherence.py runs/peers/20ng.json [more.json ...] [--corpus 20ng]

Prints one line per row (model, K, seed, training-document coherence, held-out coherence, diversity, both
qualities) and a table of means per model and K. ``--pseudo-count c`` scores both coherence columns with
``etm.metrics.topic_coherence``'s small-reference estimate instead of the authors' NPMI.

``--subset N`` adds the question ``etm tune`` faces: scored over only N held-out documents (as a validation
split is), does a coherence estimate still rank the rows as the whole held-out reference does? For the authors'
NPMI (a pair never seen together scores -1) and for ``etm.metrics.topic_coherence``'s ``pseudo_count``
estimates (``--pseudo-counts``), over ``--draws`` seeded random subsets of N test documents, it prints the
Kendall tau of each estimate's quality (coherence x diversity) with the whole reference's authors' quality,
the mean over draws, and each row's estimates.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import kendalltau

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import default_data  # noqa: E402
from peers import read_corpus  # noqa: E402

from etm.metrics import topic_coherence  # noqa: E402


def load_rows(paths: list[Path], corpus: str) -> list[dict[str, Any]]:
    """The stored rows of ``corpus`` that keep their top words, each (model, K, seed) once (the latest)."""
    rows: dict[tuple[str, int, int], dict[str, Any]] = {}
    for path in paths:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(stored, dict) or not isinstance(stored.get("rows"), list):
            raise ValueError(f"{path} is not a file of benchmarks/peers.py --json-out: it has no 'rows' list")
        for row in stored["rows"]:
            if row.get("corpus") == corpus and row.get("top10"):
                key = (row["model"], int(row["k"]), int(row["seed"]))
                if key not in rows or row.get("date", "") >= rows[key].get("date", ""):
                    rows[key] = row
    return [rows[key] for key in sorted(rows)]


def top_indices(rows: list[dict[str, Any]], vocabulary: list[str]) -> list[np.ndarray]:
    """Each row's stored top words as (K, 10) vocabulary indices."""
    index = {word: i for i, word in enumerate(vocabulary)}
    return [np.array([[index[w] for w in topic] for topic in row["top10"]]) for row in rows]


def score(rows: list[dict[str, Any]], vocabulary: list[str], train: sp.csr_matrix,
          heldout: sp.csr_matrix, pseudo_count: float = 0.0) -> list[dict[str, Any]]:
    """Each row's coherence over the training and the held-out documents, and the qualities they give."""
    out = []
    for row, top in zip(rows, top_indices(rows, vocabulary)):
        train_coherence = topic_coherence(top, train, pseudo_count=pseudo_count)
        heldout_coherence = topic_coherence(top, heldout, pseudo_count=pseudo_count)
        out.append({"model": row["model"], "k": int(row["k"]), "seed": int(row["seed"]),
                    "coherence": train_coherence, "heldout_coherence": heldout_coherence,
                    "diversity": float(row["diversity"]), "quality": train_coherence * float(row["diversity"]),
                    "heldout_quality": heldout_coherence * float(row["diversity"])})
    return out


def subset_agreement(rows: list[dict[str, Any]], vocabulary: list[str], heldout: sp.csr_matrix, size: int,
                     draws: int, pseudo_counts: list[float], seed: int = 0) -> dict[float, dict[str, Any]]:
    """For each pseudo count (0: the authors' NPMI): Kendall tau of its quality over random ``size``-document
    subsets of ``heldout`` with the authors' quality over all of ``heldout``, per draw, and each row's mean."""
    if not 2 <= size <= heldout.shape[0]:
        raise ValueError(f"--subset must be between 2 and the {heldout.shape[0]} held-out documents, got {size}")
    tops = top_indices(rows, vocabulary)
    diversity = np.array([float(row["diversity"]) for row in rows])
    truth = np.array([topic_coherence(top, heldout) for top in tops]) * diversity
    rng = np.random.default_rng(seed)
    subsets = [heldout[np.sort(rng.choice(heldout.shape[0], size, replace=False))] for _ in range(draws)]
    out = {}
    for c in pseudo_counts:
        quality = np.array([[topic_coherence(top, ref, pseudo_count=c) for top in tops] for ref in subsets])
        quality *= diversity
        taus = [float(kendalltau(q, truth)[0]) for q in quality]
        out[c] = {"tau": taus, "row_quality": quality.mean(axis=0), "truth": truth}
    return out


def print_agreement(rows: list[dict[str, Any]], agreement: dict[float, dict[str, Any]], size: int) -> None:
    print(f"\nRanking the rows by quality over {size} held-out documents against all of them (Kendall tau, "
          "mean and range over the draws):")
    for c, result in agreement.items():
        name = "authors' NPMI" if c == 0 else f"pseudo_count={c:g}"
        taus = result["tau"]
        print(f"  {name:18s} tau {np.mean(taus):.3f} ({min(taus):.3f} .. {max(taus):.3f})")
    names = [f"{row['model']} K={row['k']} seed={row['seed']}" for row in rows]
    width = max(len(n) for n in names)
    print("\n" + "row".ljust(width) + "  all docs  " + "  ".join(
        ("authors" if c == 0 else f"c={c:g}").rjust(8) for c in agreement))
    first = next(iter(agreement.values()))
    for i, name in enumerate(names):
        print(name.ljust(width) + f"  {first['truth'][i]:8.3f}  " + "  ".join(
            f"{result['row_quality'][i]:8.3f}" for result in agreement.values()))


def table(scored: list[dict[str, Any]]) -> str:
    """Markdown table of the means (± standard deviation over seeds) per model and K."""
    groups: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
    for s in scored:
        groups[(s["k"], s["model"])].append(s)
    lines = ["| K | model | seeds | coherence (training docs) | coherence (held-out docs) | diversity | quality | "
             "held-out quality |", "|---|---|---|---|---|---|---|---|"]

    def cell(values: list[float]) -> str:
        return f"{np.mean(values):.3f}" + (f" ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else "")

    for (k, model), group in sorted(groups.items(), key=lambda kv: (kv[0][0], -np.mean(
            [g["heldout_quality"] for g in kv[1]]))):
        lines.append(f"| {k} | {model} | {len(group)} | " + " | ".join(
            cell([g[name] for g in group])
            for name in ("coherence", "heldout_coherence", "diversity", "quality", "heldout_quality")) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("rows", type=Path, nargs="+", help="JSON files written by peers.py --json-out")
    ap.add_argument("--corpus", choices=("20ng", "m10"), default="20ng")
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--pseudo-count", type=float, default=0.0,
                    help="score both coherence columns with topic_coherence's small-reference estimate (0: the "
                         "authors' NPMI)")
    ap.add_argument("--subset", type=int, help="also rank the rows over random subsets of this many test documents")
    ap.add_argument("--draws", type=int, default=5, help="random subsets (with --subset)")
    ap.add_argument("--pseudo-counts", default="0,0.5,1,2,5",
                    help="comma list of topic_coherence pseudo counts to compare (0: the authors' NPMI)")
    args = ap.parse_args(argv)
    corpus = read_corpus(args.data, args.corpus)
    first, second = corpus.test_halves
    rows, heldout = load_rows(args.rows, args.corpus), sp.csr_matrix(first + second)
    scored = score(rows, list(corpus.vocabulary), sp.csr_matrix(corpus.train.counts), heldout, args.pseudo_count)
    for s in scored:
        print(f"{s['model']:40s} K={s['k']:3d} seed={s['seed']:5d}: coherence {s['coherence']:.3f} over training "
              f"documents, {s['heldout_coherence']:.3f} held out; diversity {s['diversity']:.3f}; quality "
              f"{s['quality']:.3f}, held out {s['heldout_quality']:.3f}")
    print()
    print(table(scored))
    if args.subset:
        counts = [float(c) for c in args.pseudo_counts.split(",")]
        agreement = subset_agreement(rows, list(corpus.vocabulary), heldout, args.subset, args.draws, counts)
        print_agreement(rows, agreement, args.subset)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
