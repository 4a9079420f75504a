"""The README quick start on a small corpus: do the defaults give distinct topics?

Runs the Python quick start of the README exactly as shown (``TopicModel(20, epochs=100, patience=10,
preprocessor=Preprocessor(min_df=10, max_df=0.5, strip_newsgroup=True))``) on the first N training messages of
raw 20 Newsgroups, with the default batch size (chosen for the corpus) and with the authors' fixed 1000, and
prints a table: batch size, epochs run, coherence (NPMI, top 10, over the same texts), diversity (top 25),
quality, whether collapse was reported, and seconds. Beside each seed, tomotopy's LDA (``--lda-iterations``
Gibbs iterations, one thread) on the same bags of words (the model's fitted vocabulary), scored the same way:
what a user comparing libraries on a small corpus of their own would see.

    python benchmarks/small_corpus.py [--documents 2000] [--seeds 2019,1,2] [--data ../shared/data]
                                      [--lda-iterations 1000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import sys
import time
from pathlib import Path

import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import train_tomotopy  # noqa: E402

from etm import Preprocessor, TopicModel  # noqa: E402
from etm.metrics import top_word_indices, topic_coherence, topic_diversity, topic_quality  # noqa: E402


def read_texts(data: Path, n: int) -> list[str]:
    texts: list[str] = []
    with gzip.open(data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            if record["split"] == "train":
                texts.append(record["text"])
            if len(texts) == n:
                break
    return texts


def run(texts: list[str], seed: int, batch_size: int | None) -> tuple[dict, TopicModel]:
    t0 = time.perf_counter()
    model = TopicModel(20, epochs=100, patience=10, batch_size=batch_size, random_state=seed, device="cpu",
                       preprocessor=Preprocessor(min_df=10, max_df=0.5, strip_newsgroup=True))
    model.fit(texts)
    scores = model.evaluate(texts)
    return {"model": "etm", "seed": seed, "batch": model.batch_size_, "epochs": model.n_iter_, **scores,
            "collapse": model.collapse_ is not None, "seconds": time.perf_counter() - t0}, model


def run_lda(counts: sp.csr_matrix, vocabulary: list[str], seed: int, iterations: int) -> dict:
    """tomotopy's LDA (its defaults: alpha 0.1, eta 0.01) on the same bags of words, scored like ``evaluate``."""
    _, beta, seconds = train_tomotopy(counts, vocabulary, 20, iterations, 1, seed)
    coherence = topic_coherence(top_word_indices(beta, 10), counts)
    diversity = topic_diversity(top_word_indices(beta, 25))
    return {"model": "LDA (tomotopy)", "seed": seed, "batch": "-", "epochs": f"{iterations} it.",
            "coherence": coherence, "diversity": diversity, "quality": topic_quality(coherence, diversity),
            "collapse": False, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--seeds", default="2019,1,2")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--old-default-seeds", default="2019", help="seeds to run with the authors' batch 1000")
    parser.add_argument("--lda-iterations", type=int, default=1000, help="tomotopy Gibbs iterations (0: no LDA rows)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(1)
    texts = read_texts(Path(args.data), args.documents)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",") if s):
        row, model = run(texts, seed, None)
        rows.append(row)
        if args.lda_iterations:
            counts = sp.csr_matrix(model.preprocessor_.transform(texts))
            rows.append(run_lda(counts, list(model.vocabulary_), seed, args.lda_iterations))
    rows += [run(texts, int(s), 1000)[0] for s in args.old_default_seeds.split(",") if s]
    print(f"README quick start on the first {len(texts)} training messages of raw 20 Newsgroups (K=20), one thread")
    print("| model | seed | batch | epochs | coherence | diversity | quality | collapse reported | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['seed']} | {r['batch']} | {r['epochs']} | {r['coherence']:.3f} | "
              f"{r['diversity']:.3f} | {r['quality']:.3f} | {'yes' if r['collapse'] else 'no'} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
