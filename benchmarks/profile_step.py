"""Where a training step's time goes: torch.profiler over etm's step at a large vocabulary.

Why this exists: the scale work removed what a step does not need (page
faults of freshly mapped temporaries, a softmax down the columns of a (V, K)
matrix); this script is how those were found, and shows what is left.
It builds raw 20 Newsgroups over a ``--vocab``-word vocabulary, runs a few
warm-up steps of the authors' model (K=50, H=800, E=300, batch 1000) and
prints the median step time and the profiler's table of operators by self
CPU time, for exact Adam and, with ``--lazy``, for ``lazy_updates``.

Usage::

    .venv/bin/python benchmarks/profile_step.py [--vocab 50000] [--threads 2] [--lazy] [--malloc default]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "src"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lazy", action="store_true", help="profile lazy_updates instead of exact Adam")
    parser.add_argument("--malloc", choices=["etm", "default"], default="etm",
                        help="'default' leaves glibc malloc as it is, to see what etm's tuning saves")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("ETM_SHARED_DATA", REPO_ROOT.parent / "shared" / "data")))
    args = parser.parse_args(argv)
    if args.malloc == "default":
        os.environ["ETM_MALLOC"] = "default"
    import torch
    from torch.profiler import profile

    from etm.device import reuse_freed_memory
    from etm.model import ETM, SparseBatch
    from etm.preprocessing import Preprocessor
    from etm.training import LazyAdam

    reuse_freed_memory()
    torch.set_num_threads(args.threads)
    with gzip.open(args.data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh]
    counts = Preprocessor(max_features=args.vocab).fit_transform(texts).astype(np.float32).tocsr()
    counts = counts[np.diff(counts.indptr) > 0]
    torch.manual_seed(0)
    model = ETM(50, counts.shape[1], 800, 300, enc_drop=0.0)
    first = model.q_theta[0]
    if args.lazy:
        first.sparse_grad = True
        optimizer = LazyAdam([first.weight_t], [p for p in model.parameters() if p is not first.weight_t], 0.005,
                             1.2e-6)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.005, weight_decay=1.2e-6, fused=True)
    rng = np.random.default_rng(0)

    def step() -> int:
        idx = np.sort(rng.choice(counts.shape[0], 1000, replace=False))
        batch = SparseBatch.from_scipy(counts[idx])
        optimizer.zero_grad(set_to_none=True)
        recon, kld = model(batch, batch.normalized())
        (recon + kld).backward()
        optimizer.step()
        return int(batch.present.numel())

    for _ in range(2):
        step()
    times, words = [], []
    for _ in range(args.steps):
        start = time.perf_counter()
        words.append(step())
        times.append(time.perf_counter() - start)
    print(f"V={counts.shape[1]}, {'lazy' if args.lazy else 'exact'} Adam, {args.threads} threads, malloc "
          f"{args.malloc}: median step {1e3 * statistics.median(times):.0f} ms; a batch holds "
          f"{statistics.mean(words):,.0f} distinct words ({100 * statistics.mean(words) / counts.shape[1]:.0f}% of V)")
    with profile() as prof:
        for _ in range(3):
            step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


if __name__ == "__main__":
    sys.exit(main())
