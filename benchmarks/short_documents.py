"""Short documents: learned word embeddings against the corpus's own skip-gram vectors, and LDA, by length.

Why: the default keeps ``rho`` fixed at skip-gram vectors of the training documents when the mean training
document has fewer than ``etm.options.SHORT_DOCUMENT_TOKENS`` tokens (``corpus_embeddings=None``). This script
shows where that threshold comes from: for corpora of known document length it trains etm with
``corpus_embeddings=False`` (learned embeddings) and ``True`` (the corpus's vectors, by skip-gram and by
``corpus_embedding_method="ppmi"``; ``--vectors`` chooses the rows), everything else at the defaults, and
tomotopy's LDA, and prints coherence (NPMI of the top 10 words over the training documents),
diversity (top 25), quality and document-completion perplexity on the test halves.

Corpora (``--corpora``), all from ``../shared/data``:

* ``subjects``: the distinct subject lines of raw 20 Newsgroups (``20news-bydate.jsonl.gz``; "Re:" removed,
  duplicates dropped, the bydate train/test split, 10% of training as validation), ``Preprocessor(min_df=3)``;
* ``m10``: CiteSeer-M10 titles (OCTIS);
* ``cut10``, ``cut25``, ``cut50``: the authors' 20NG with every training and validation message reduced to at
  most 10 / 25 / 50 of its tokens, drawn at random (seed 0); the test halves are the authors' own;
* ``20ng``: the authors' 20NG as it is.

    python benchmarks/short_documents.py --corpora subjects,m10,cut10,cut25,cut50,20ng --k 50 --seeds 2019 \
        [--vectors learned,skipgram,ppmi]
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from etm.corpus import Corpus, PreparedCorpus, RawDocuments, prepare_corpus
from etm.embeddings import clear_corpus_skipgram_cache
from etm.estimator import TopicModel
from etm.preprocessing import Preprocessor
from etm.readers import read_authors_format, read_octis

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import Evaluator, default_data, fit_tomotopy  # noqa: E402
from recipe import score  # noqa: E402

CORPORA = ("subjects", "m10", "cut10", "cut25", "cut50", "20ng")


def subject_lines(data: Path) -> PreparedCorpus:
    """Distinct subject lines of raw 20 Newsgroups, a 2-3 token corpus with the bydate split."""
    texts, splits, seen = [], [], set()
    with gzip.open(data / "20news-bydate.jsonl.gz", "rt", encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            found = re.search(r"^Subject:(.*)$", record["text"], re.M)
            subject = re.sub(r"^((re|fwd?)\s*:\s*)+", "", found.group(1).strip() if found else "", flags=re.I)
            key = subject.strip().lower()
            if key and key not in seen:
                seen.add(key)
                texts.append(subject.strip())
                splits.append(record["split"])
    raw = RawDocuments(texts=texts, labels=None, doc_ids=None, splits=splits, source="20news subject lines")
    corpus, _ = prepare_corpus(raw, Preprocessor(min_df=3), valid_size=0.1, random_state=0)
    return corpus


def cut(data: Path, most: int) -> PreparedCorpus:
    """The authors' 20NG with training and validation messages cut to at most ``most`` random tokens."""
    full = read_authors_format(data / "20ng-etm")
    rng = np.random.default_rng(0)

    def shorten(part: Corpus) -> Corpus:
        counts = sp.csr_matrix(part.counts)
        rows = []
        for d in range(counts.shape[0]):
            lo, hi = counts.indptr[d], counts.indptr[d + 1]
            tokens = np.repeat(counts.indices[lo:hi], counts.data[lo:hi].astype(np.int64))
            if tokens.size > most:
                tokens = rng.choice(tokens, most, replace=False)
            rows.append(sp.csr_matrix(np.bincount(tokens, minlength=counts.shape[1])))
        return Corpus(sp.vstack(rows).tocsr(), part.vocabulary)

    short = PreparedCorpus.from_splits(shorten(full.train), shorten(full.valid), full.test, random_state=0)
    short.test_halves = full.test_halves  # the authors' own halves, as for the uncut corpus
    return short


def load(name: str, data: Path) -> PreparedCorpus:
    if name == "subjects":
        return subject_lines(data)
    if name == "m10":
        return read_octis(data / "octis-m10")
    if name == "20ng":
        return read_authors_format(data / "20ng-etm")
    return cut(data, int(name[3:]))


NAMES = {"learned": "learned embeddings", "skipgram": "corpus skip-gram, fixed", "ppmi": "corpus PPMI, fixed"}


def fit_etm(corpus: PreparedCorpus, ev: Evaluator, k: int, seed: int, vectors: str) -> dict[str, Any]:
    """etm at the defaults but for its word embeddings: ``vectors`` is "learned" or a corpus embedding method."""
    method = {"corpus_embedding_method": vectors} if vectors != "learned" else {}
    model = TopicModel(n_topics=k, random_state=seed, device="cpu", corpus_embeddings=vectors != "learned",
                       **method)
    clear_corpus_skipgram_cache()  # every run pays for its own corpus vectors
    t0 = time.perf_counter()
    model.fit(corpus)
    seconds = time.perf_counter() - t0
    s = score(model, ev, model.transform(corpus.test_halves[0]), seconds)
    return {"model": NAMES[vectors], "coherence": s.coherence, "diversity": s.diversity, "quality": s.quality,
            "perplexity": s.perplexity, "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpora", default=",".join(CORPORA))
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--seeds", default="2019")
    ap.add_argument("--vectors", default="learned,skipgram,ppmi",
                    help="etm rows: learned embeddings and/or fixed corpus vectors by method (skipgram, ppmi)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--lda-iterations", type=int, default=1000)
    ap.add_argument("--data", type=Path, default=default_data())
    args = ap.parse_args(argv)
    names = [c for c in args.corpora.split(",") if c]
    unknown = sorted(set(names) - set(CORPORA))
    if unknown:
        ap.error(f"unknown corpora {unknown}; choose from {', '.join(CORPORA)}")
    torch.set_num_threads(args.threads)
    print(f"K={args.k}, seeds {args.seeds}, {args.threads} thread(s); coherence: NPMI of the top 10 words over the "
          "training documents; perplexity: document completion on the test halves")
    print("| corpus | tokens a document | model | seed | coherence | diversity | quality | test ppl | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    with threadpool_limits(args.threads):
        for name in names:
            corpus = load(name, args.data)
            ev = Evaluator(corpus)
            length = corpus.train.n_tokens / corpus.train.n_docs
            for seed in [int(s) for s in args.seeds.split(",")]:
                rows = [fit_etm(corpus, ev, args.k, seed, vectors) for vectors in args.vectors.split(",")]
                lda = fit_tomotopy(corpus, ev, args.lda_iterations, args.threads, n_topics=args.k, seed=seed)
                rows.append({"model": "LDA (tomotopy)", "coherence": lda.by_beta.coherence,
                             "diversity": lda.by_beta.diversity, "quality": lda.by_beta.quality,
                             "perplexity": lda.by_beta.perplexity, "seconds": lda.seconds})
                for r in rows:
                    print(f"| {name} | {length:.1f} | {r['model']} | {seed} | {r['coherence']:.3f} | "
                          f"{r['diversity']:.3f} | {r['quality']:.3f} | {r['perplexity']:.0f} | {r['seconds']:.0f} |",
                          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
