"""The README quick start on a small corpus: do the defaults give distinct topics?

Runs the Python quick start of the README exactly as shown (``TopicModel(20, epochs=100, patience=10,
preprocessor=Preprocessor(min_df=10, max_df=0.5, strip_newsgroup=True))``) on the first N training messages of
raw 20 Newsgroups, with the default batch size (chosen for the corpus) and with the authors' fixed 1000, and
prints a table: batch size, epochs run, coherence (NPMI, top 10, over the same texts), diversity (top 25),
quality, whether collapse was reported, and seconds.

    python benchmarks/small_corpus.py [--documents 2000] [--seeds 2019,1,2] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import time
from pathlib import Path

from etm import Preprocessor, TopicModel


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


def run(texts: list[str], seed: int, batch_size: int | None) -> dict:
    t0 = time.perf_counter()
    model = TopicModel(20, epochs=100, patience=10, batch_size=batch_size, random_state=seed, device="cpu",
                       preprocessor=Preprocessor(min_df=10, max_df=0.5, strip_newsgroup=True))
    model.fit(texts)
    scores = model.evaluate(texts)
    return {"seed": seed, "batch": model.batch_size_, "epochs": model.n_iter_, **scores,
            "collapse": model.collapse_ is not None, "seconds": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--seeds", default="2019,1,2")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--old-default-seeds", default="2019", help="seeds to run with the authors' batch 1000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    texts = read_texts(Path(args.data), args.documents)
    rows = [run(texts, int(s), None) for s in args.seeds.split(",") if s]
    rows += [run(texts, int(s), 1000) for s in args.old_default_seeds.split(",") if s]
    print(f"README quick start on the first {len(texts)} training messages of raw 20 Newsgroups (K=20)")
    print("| seed | batch | epochs | coherence | diversity | quality | collapse reported | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seed']} | {r['batch']} | {r['epochs']} | {r['coherence']:.3f} | {r['diversity']:.3f} | "
              f"{r['quality']:.3f} | {'yes' if r['collapse'] else 'no'} | {r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
