"""etm against the authors' reported numbers on their preprocessed 20 Newsgroups.

Trains etm at the authors' settings (K=50, H=800, E=300, relu, Adam lr 0.005,
batch 1000, weight decay 1.2e-6, trained embeddings, seed 2019) on
``../shared/data/20ng-etm``, measures the test halves' document-completion
perplexity along the way (outside the timed training), and prints a table
against the authors' code: 1671 perplexity, 0.184 coherence, 0.446 diversity
after 200 epochs, about 2 s an epoch on this 2-core machine (~7 minutes).

Usage::

    python benchmarks/reproduce_20ng.py [--epochs 200] [--eval-every 5] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from etm import ETM
from etm.metrics import (
    completion_loglik,
    perplexity_per_document,
    perplexity_per_token,
    top_word_indices,
    topic_coherence,
    topic_diversity,
)
from etm.model import log_word_frequency
from etm.readers import read_authors_format
from etm.training import TrainingConfig, get_topic_word, infer_theta, train

AUTHORS = {"perplexity": 1671.0, "coherence": 0.184, "diversity": 0.446, "seconds_per_epoch": 2.1, "epochs": 200}


def default_data() -> Path:
    env = os.environ.get("ETM_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def authors_batch_perplexity(theta: np.ndarray, beta: np.ndarray, second, batch: int = 1000) -> float:
    """The authors' exact averaging: per-document NLL/token, mean per batch of 1000, mean of batches."""
    ll = completion_loglik(theta, beta, second)
    n = np.asarray(second.sum(axis=1)).ravel()
    per_doc = -ll / n
    means = [per_doc[i : i + batch].mean() for i in range(0, len(per_doc), batch)]
    return float(np.exp(np.mean(means)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=5, help="epochs between test perplexity probes")
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--anneal-lr", type=int, default=0)
    ap.add_argument("--nonmono", type=int, default=10)
    ap.add_argument("--seed", type=int, default=2019)
    ap.add_argument("--lr-schedule", default="constant", choices=["constant", "cosine"])
    ap.add_argument("--enc-drop", type=float, default=0.0, help="encoder dropout (authors' main.py: 0.0)")
    ap.add_argument("--ema-decay", type=float, default=0.0, help="weight averaging decay per step (0 = off)")
    ap.add_argument("--background", type=int, default=0, choices=[0, 1],
                    help="log-frequency background bias in the decoder (not in the authors' model)")
    ap.add_argument("--kl-warmup", type=int, default=0, help="epochs of linear KL warm-up (0 = off)")
    ap.add_argument("--encoder-token-drop", type=float, default=0.0,
                    help="share of each training document's tokens hidden from the encoder (0 = off)")
    ap.add_argument("--kl-weight", type=float, default=1.0, help="multiplier of the KL term (1 = the ELBO)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--json-out", type=Path, default=None, help="write the curve and the results as JSON")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)

    corpus = read_authors_format(args.data / "20ng-etm")
    h1, h2 = corpus.test_halves
    train_ref = corpus.train.counts
    V = len(corpus.vocabulary)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        model = ETM(50, V, 800, 300, theta_act="relu", enc_drop=args.enc_drop,
                    background=log_word_frequency(train_ref) if args.background else None)
    config = TrainingConfig(epochs=args.epochs, batch_size=1000, lr=args.lr, weight_decay=1.2e-6,
                            optimizer="adam", seed=args.seed, patience=args.patience,
                            anneal_lr=bool(args.anneal_lr), nonmono=args.nonmono,
                            kl_warmup=args.kl_warmup, lr_schedule=args.lr_schedule,
                            ema_decay=args.ema_decay, encoder_token_drop=args.encoder_token_drop,
                            kl_weight=args.kl_weight)
    curve: list[dict] = []
    elapsed = {"train": 0.0}

    def probe(epoch: int, m: ETM, record: dict) -> None:
        elapsed["train"] += record["seconds"]
        if epoch % args.eval_every and epoch != args.epochs:
            return
        theta = infer_theta(m, h1)
        beta = get_topic_word(m)
        ll = completion_loglik(theta, beta, h2)
        n = np.asarray(h2.sum(axis=1)).ravel()
        point = {
            "epoch": epoch,
            "train_seconds": round(elapsed["train"], 2),
            "test_ppl_doc": perplexity_per_document(ll, n),
            "valid_ppl_doc": record.get("valid_perplexity"),
            "coherence": topic_coherence(top_word_indices(beta, 10), train_ref),
            "diversity": topic_diversity(top_word_indices(beta, 25)),
        }
        curve.append(point)
        print(f"epoch {epoch:4d}  {point['train_seconds']:7.1f} s  test ppl {point['test_ppl_doc']:8.1f}  "
              f"valid ppl {point['valid_ppl_doc']:8.1f}  coherence {point['coherence']:.3f}  "
              f"diversity {point['diversity']:.3f}", flush=True)

    t0 = time.perf_counter()
    result = train(model, corpus, config, on_epoch_end=probe)
    wall = time.perf_counter() - t0
    theta = infer_theta(result.model, h1)
    beta = get_topic_word(result.model)
    ll = completion_loglik(theta, beta, h2)
    n = np.asarray(h2.sum(axis=1)).ravel()
    t_coh = time.perf_counter()
    coherence = topic_coherence(top_word_indices(beta, 10), train_ref)
    coh_seconds = time.perf_counter() - t_coh
    coherence11 = topic_coherence(top_word_indices(beta, 11), train_ref)
    diversity = topic_diversity(top_word_indices(beta, 25))
    reached = next((p for p in curve if p["test_ppl_doc"] <= AUTHORS["perplexity"]), None)
    authors_wall = AUTHORS["seconds_per_epoch"] * AUTHORS["epochs"]
    final = {
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "train_seconds": round(elapsed["train"], 1),
        "seconds_per_epoch": round(elapsed["train"] / max(len(result.history), 1), 3),
        "test_perplexity_per_document": perplexity_per_document(ll, n),
        "test_perplexity_authors_batch_average": authors_batch_perplexity(theta, beta, h2),
        "test_perplexity_per_token": perplexity_per_token(ll, n),
        "coherence_top10": coherence,
        "coherence_top11_as_authors_code": coherence11,
        "diversity_top25": diversity,
        "quality": coherence * diversity,
        "coherence_seconds": round(coh_seconds, 3),
        "reached_1671_at_epoch": None if reached is None else reached["epoch"],
        "reached_1671_after_seconds": None if reached is None else reached["train_seconds"],
        "wall_seconds_including_probes": round(wall, 1),
    }
    print()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print("| | authors' code (200 epochs) | etm |")
    print("|---|---|---|")
    print(f"| test doc-completion perplexity (per document) | {AUTHORS['perplexity']:.0f} | "
          f"{final['test_perplexity_per_document']:.0f} (authors' batch averaging: "
          f"{final['test_perplexity_authors_batch_average']:.0f}) |")
    print(f"| NPMI coherence (top 10) | {AUTHORS['coherence']:.3f} | {coherence:.3f} "
          f"(top 11 as the authors' loop: {coherence11:.3f}) |")
    print(f"| diversity (top 25) | {AUTHORS['diversity']:.3f} | {diversity:.3f} |")
    print(f"| quality | {AUTHORS['coherence'] * AUTHORS['diversity']:.3f} | {coherence * diversity:.3f} |")
    print(f"| epochs / training time | 200 / ~{authors_wall:.0f} s | {final['epochs_run']} "
          f"(best {final['best_epoch']}) / {final['train_seconds']:.0f} s |")
    if reached is not None:
        print(f"| time to test perplexity <= 1671 | ~{authors_wall:.0f} s | {reached['train_seconds']:.0f} s "
              f"(epoch {reached['epoch']}, {authors_wall / max(reached['train_seconds'], 1e-9):.1f}x faster) |")
    else:
        print("| time to test perplexity <= 1671 | ~420 s | not reached |")
    print(f"| coherence computation over 11,214 docs | 311 s | {coh_seconds:.3f} s |")
    if args.json_out:
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "curve": curve, "final": final}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
