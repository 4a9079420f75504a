"""Coherence of benchmark topics over documents no model saw, next to the benchmark's training-document coherence.

Why this script exists: the peers benchmark (``benchmarks/peers.py``) scores coherence as NPMI over the
*training* documents, as the ETM paper does. A model could lead there by choosing rare words that happen to
share training documents. This script takes the rows ``peers.py`` stored (each keeps its topics' top 10 words)
and scores the same top words over the test documents of the same corpus (each test document's two halves
together), a reference none of the models trained on; diversity is the row's own. Nothing is retrained.

    python benchmarks/heldout_coherence.py runs/peers/20ng.json [more.json ...] [--corpus 20ng]

Prints one line per row (model, K, seed, training-document coherence, held-out coherence, diversity, both
qualities) and a table of means per model and K.
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


def score(rows: list[dict[str, Any]], vocabulary: list[str], train: sp.csr_matrix,
          heldout: sp.csr_matrix) -> list[dict[str, Any]]:
    """Each row's coherence over the training and the held-out documents, and the qualities they give."""
    index = {word: i for i, word in enumerate(vocabulary)}
    out = []
    for row in rows:
        top = np.array([[index[w] for w in topic] for topic in row["top10"]])
        train_coherence, heldout_coherence = topic_coherence(top, train), topic_coherence(top, heldout)
        out.append({"model": row["model"], "k": int(row["k"]), "seed": int(row["seed"]),
                    "coherence": train_coherence, "heldout_coherence": heldout_coherence,
                    "diversity": float(row["diversity"]), "quality": train_coherence * float(row["diversity"]),
                    "heldout_quality": heldout_coherence * float(row["diversity"])})
    return out


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
    args = ap.parse_args(argv)
    corpus = read_corpus(args.data, args.corpus)
    first, second = corpus.test_halves
    scored = score(load_rows(args.rows, args.corpus), list(corpus.vocabulary), sp.csr_matrix(corpus.train.counts),
                   sp.csr_matrix(first + second))
    for s in scored:
        print(f"{s['model']:40s} K={s['k']:3d} seed={s['seed']:5d}: coherence {s['coherence']:.3f} over training "
              f"documents, {s['heldout_coherence']:.3f} held out; diversity {s['diversity']:.3f}; quality "
              f"{s['quality']:.3f}, held out {s['heldout_quality']:.3f}")
    print()
    print(table(scored))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
