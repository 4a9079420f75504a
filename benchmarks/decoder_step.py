"""Time of a training step with the mixture and the product-of-experts decoder, by vocabulary size.

Why: the product decoder (the default recipe of ``TopicModel`` / ``etm train``) normalises over the whole
vocabulary, so a step holds a dense (batch, V) block where the mixture only touches the batch's non-zeros.
This prints the median step (forward, backward, Adam) of both at K=50, H=800, E=300, batch 1000 (the largest
automatic batch), on random sparse batches of ``--words`` distinct words a document, interleaved so that both
see the same machine load, with the peak of the dense block's memory.

    python benchmarks/decoder_step.py --vocab 3000,20000,50000 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from etm import ETM  # noqa: E402
from etm.model import SparseBatch  # noqa: E402


def random_batch(rng: np.random.Generator, docs: int, vocab: int, words: int) -> SparseBatch:
    rows = np.repeat(np.arange(docs), words)
    cols = np.concatenate([rng.choice(vocab, words, replace=False) for _ in range(docs)])
    counts = sp.csr_matrix((rng.integers(1, 4, rows.size).astype(np.float32), (rows, cols)), shape=(docs, vocab))
    return SparseBatch.from_scipy(counts)


def step_seconds(model: ETM, optimizer: torch.optim.Optimizer, batch: SparseBatch) -> float:
    t0 = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    theta, kld = model.get_theta(batch.normalized())
    recon, _ = model._loss_terms(batch, theta, topics=False)
    (recon.mean() + kld).backward()
    optimizer.step()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default="3000,20000,50000")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--words", type=int, default=80, help="distinct words per document")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print("| V | mixture step (ms) | product step (ms) | product / mixture | dense (batch, V) block (MB) |")
    print("|---|---|---|---|---|")
    for vocab in [int(v) for v in args.vocab.split(",")]:
        torch.manual_seed(0)
        models = {d: ETM(50, vocab, 800, 300, enc_drop=0.0, similarity="cosine", decoder=d) for d in ("mixture",
                                                                                                      "product")}
        optims = {d: torch.optim.Adam(m.parameters(), lr=0.005) for d, m in models.items()}
        times: dict[str, list[float]] = {d: [] for d in models}
        for i in range(args.steps + 1):
            batch = random_batch(rng, args.batch, vocab, args.words)
            for d in models:
                seconds = step_seconds(models[d], optims[d], batch)
                if i:  # the first step warms up
                    times[d].append(seconds)
        mix, prod = (statistics.median(times[d]) * 1000 for d in ("mixture", "product"))
        print(f"| {vocab:,} | {mix:.0f} | {prod:.0f} | {prod / mix:.2f} | {args.batch * vocab * 4 / 2**20:.0f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
