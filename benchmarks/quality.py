"""Topic quality of ETM (unlabelled and labelled) against LDA on the authors' 20 Newsgroups, K = 25, 50, 100.

Why this script exists: Dieng et al. (2020) compare the ETM with LDA on topic quality (NPMI coherence x
diversity) and held-out document-completion perplexity for several numbers of topics, with the labelled ETM
using pretrained skip-gram word embeddings. This script makes that comparison for etm on the authors' own
preprocessed 20 Newsgroups (``20ng-etm``: their vocabulary of 3072 words, their train / valid / test split and
test halves), every model scored with the same ``etm.metrics`` functions (via ``_baselines.Evaluator``):

* perplexity: document completion, per document (the authors' average), on the authors' test halves: topic
  proportions are inferred from each test document's first half and its second half is scored with
  ``etm.metrics.completion_loglik`` / ``perplexity_per_document``;
* coherence: mean NPMI of each topic's top 10 words over training-document co-occurrence
  (``etm.metrics.topic_coherence``);
* diversity: unique share of the topics' top 25 words (``etm.metrics.topic_diversity``);
* quality = coherence x diversity; training time in seconds (wall clock, at ``--threads`` threads).

Rows, for each K:

1. ETM (unlabelled): ``etm.estimator.TopicModel`` at the authors' settings (H=800, E=300, relu, Adam lr
   0.005, batch 1000, weight decay 1.2e-6, encoder dropout 0, seed 2019), ``--epochs`` epochs, fitted on the
   PreparedCorpus, so the weights of the epoch with the best validation perplexity (the authors' 100
   validation documents, checked every epoch) are kept; the training time includes that validation.
2. ETM (labelled, skip-gram): the same with fixed pretrained word embeddings: skip-gram (the authors'
   settings: 300 dimensions, window 4, 10 negative samples, min count 2, 50 epochs, one worker, seed 2019)
   trained once per run, shared by all K, on the raw 20 Newsgroups "bydate" *training* messages (headers
   kept, as the authors' preprocessing kept them; these 11,314 messages are the authors' train + valid
   documents), tokenised with the library's tokenizer without a stop list and then restricted to the
   authors' vocabulary (so every vocabulary word, including the 29 in scikit-learn's stop list such as
   "system", keeps its vectors; words outside the vocabulary are dropped before the skip-gram windows are
   formed). The vectors are cached in ``--work-dir`` and reused. Vocabulary words without a vector get a
   seeded random vector that is trained (the estimator's default); everything else stays fixed. The
   skip-gram time is reported on its own, not added to the model's training time.
3. LDA (gensim LdaModel): online variational Bayes, gensim defaults (alpha = eta = 1/K), 10 passes, chunks of
   2000, single process; test theta from gensim's variational inference on the first halves.
4. LDA (tomotopy LDAModel): collapsed Gibbs, tomotopy defaults (alpha 0.1, eta 0.01), 1000 iterations; test
   theta from 100 Gibbs inference iterations on the first halves.

The LDA baselines are ``fit_gensim`` / ``fit_tomotopy`` of ``_baselines.py``, with the settings of
``lda_gap.py``. Their perplexity is defined exactly as the ETM's: the same test halves, beta = the topic-word
distributions, theta inferred from the first halves (by each model's own inference: the ETM's encoder mean,
LDA's variational posterior or Gibbs sample average), the same ``completion_loglik`` formula and per-document
average, so it is reported, not "n/a". The ETM's validation-based epoch selection has no LDA counterpart (LDA
runs a fixed number of passes / iterations).

Usage::

    python benchmarks/quality.py [--data ../shared/data] [--topics 25,50,100] [--epochs 200]
        [--skipgram-epochs 50] [--threads 1] [--work-dir runs/quality] [--json-out FILE]
        [--only etm,letm,gensim,tomotopy]

Expected runtime at one thread on a 2-core x86 machine: skip-gram ~10 minutes (first run only), each ETM
~1.6-1.8 s an epoch (~6 minutes for 200 epochs, two models per K), the LDAs a few minutes each; about
1 to 1.5 hours in all. Smoke run: ``--topics 25 --epochs 2 --skipgram-epochs 1``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shlex
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from etm.corpus import PreparedCorpus
from etm.embeddings import (
    AlignedEmbeddings,
    align_embeddings,
    clear_corpus_skipgram_cache,
    read_embeddings,
    save_word2vec,
    train_skipgram,
)
from etm.estimator import TopicModel
from etm.preprocessing import Preprocessor
from etm.readers import read_authors_format, read_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _baselines import SEED, Evaluator, Fitted, default_data, fit_gensim, fit_tomotopy  # noqa: E402

MODELS = {
    "etm": "ETM (unlabelled)",
    "letm": "ETM (labelled, skip-gram)",
    "letm-tuned": "ETM (labelled, skip-gram, background, KL weight 0.03)",
    "gensim": "LDA (gensim LdaModel)",
    "tomotopy": "LDA (tomotopy LDAModel)",
}
SAMPLE_K = 50
SAMPLE_TOPICS = (0, 10, 20, 30, 40)  # unselected: every 10th topic


def log(message: str) -> None:
    print(message, flush=True)


def cpu_name() -> str:
    name = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({name or platform.machine()})"
    except OSError:
        pass
    return name or platform.machine()


# --------------------------------------------------------------------------- skip-gram embeddings


def skipgram_embeddings(
    raw_path: Path, vocabulary: list[str], work_dir: Path, epochs: int, threads: int
) -> tuple[AlignedEmbeddings, dict[str, Any]]:
    """Skip-gram vectors of the vocabulary's words, trained on the raw training messages (cached)."""
    cache = work_dir / f"skipgram_20ng_train_e{epochs}_w{threads}.txt"
    info: dict[str, Any] = {"file": str(cache), "epochs": epochs, "workers": threads}
    if cache.is_file():
        log(f"skip-gram: reusing {cache}")
        info.update(cached=True, seconds=None)
    else:
        raw = read_jsonl(raw_path, split_field="split", label_field="label")
        assert raw.splits is not None
        texts = [t for t, s in zip(raw.texts, raw.splits) if s == "train"]
        keep = set(vocabulary)
        # Unfitted preprocessor: every token in reading order; no stop list, the vocabulary does the filtering.
        sentences = [[t for t in doc if t in keep] for doc in Preprocessor(stop_words=None).tokenize(texts)]
        n_tokens = sum(len(s) for s in sentences)
        log(f"skip-gram: {len(texts)} training messages, {n_tokens} vocabulary tokens, {epochs} epochs, "
            f"{threads} worker(s)")
        t0 = time.perf_counter()
        kv = train_skipgram(sentences, workers=threads, seed=SEED, epochs=epochs)
        seconds = time.perf_counter() - t0
        work_dir.mkdir(parents=True, exist_ok=True)
        save_word2vec(kv, cache)
        log(f"skip-gram: trained in {seconds:.0f} s, {len(kv)} words, saved to {cache}")
        info.update(cached=False, seconds=seconds, messages=len(texts), tokens=n_tokens)
    kv = read_embeddings(cache, vocabulary)
    aligned = align_embeddings(kv, vocabulary, random_state=SEED, source=str(cache))
    info.update(aligned.report())
    log(f"skip-gram coverage: {int(aligned.found.sum())} of {len(vocabulary)} vocabulary words "
        f"({100 * aligned.coverage:.1f}%); missing: {aligned.missing_words[:20]}")
    return aligned, info


# --------------------------------------------------------------------------- models


def fit_etm(
    corpus: PreparedCorpus, ev: Evaluator, name: str, k: int, epochs: int, embeddings: AlignedEmbeddings | None,
    **params: Any,
) -> tuple[Fitted, dict[str, Any]]:
    model = TopicModel(n_topics=k, epochs=epochs, embeddings=embeddings, random_state=SEED, device="cpu", **params)
    clear_corpus_skipgram_cache()  # every run pays for its own corpus vectors (short documents)
    model.fit(corpus)
    theta = model.transform(corpus.test_halves[0])
    fitted = ev.fitted(name, np.asarray(model.topic_word_, dtype=np.float64), theta, model.training_seconds_,
                       note=f"best validation epoch {model.best_epoch_} of {model.n_iter_}")
    extra = {"best_epoch": model.best_epoch_, "epochs_run": model.n_iter_,
             "valid_perplexity": model.valid_perplexity_}
    return fitted, extra


def run_model(
    key: str, k: int, corpus: PreparedCorpus, ev: Evaluator, args: argparse.Namespace,
    embeddings: AlignedEmbeddings | None,
) -> tuple[Fitted, dict[str, Any]]:
    if key == "etm":
        return fit_etm(corpus, ev, MODELS[key], k, args.epochs, None)
    if key == "letm":
        assert embeddings is not None
        return fit_etm(corpus, ev, MODELS[key], k, args.epochs, embeddings)
    if key == "letm-tuned":  # beyond the authors: the LDA-gap study's levers on the labelled model
        assert embeddings is not None
        return fit_etm(corpus, ev, MODELS[key], k, args.epochs, embeddings, background=True, kl_weight=0.03)
    if key == "gensim":
        fitted = fit_gensim(corpus, ev, args.gensim_passes, k)
    else:
        fitted = fit_tomotopy(corpus, ev, args.lda_iterations, args.threads, k)
    fitted.name = MODELS[key]
    return fitted, {}


# --------------------------------------------------------------------------- output


def fmt(x: float | None, digits: int) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}f}"


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| model | K | perplexity (test, per doc) | NPMI coherence (top 10) | diversity (top 25) | quality "
             "| train s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['k']} | {fmt(r['perplexity'], 0)} | {fmt(r['coherence'], 3)} | "
                     f"{fmt(r['diversity'], 3)} | {fmt(r['quality'], 3)} | {fmt(r['train_seconds'], 0)} |")
    return "\n".join(lines)


def sample_topics(fitted: Fitted, vocabulary: list[str]) -> str:
    lines = [f"{fitted.name}, K={fitted.beta.shape[0]}:"]
    for k in SAMPLE_TOPICS:
        if k < fitted.beta.shape[0]:
            words = " ".join(vocabulary[w] for w in fitted.by_beta.top10[k])
            lines.append(f"  topic {k:>2} (NPMI {fitted.by_beta.per_topic_coherence[k]:+.3f}): {words}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=default_data(),
                    help="folder holding 20ng-etm/ and 20news-bydate.jsonl.gz (default: $ETM_SHARED_DATA or "
                         "../shared/data)")
    ap.add_argument("--topics", default="25,50,100", help="comma-separated numbers of topics")
    ap.add_argument("--epochs", type=int, default=200, help="ETM epochs (best validation epoch kept)")
    ap.add_argument("--skipgram-epochs", type=int, default=50, help="skip-gram epochs (authors: 50)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch, BLAS, tomotopy and word2vec threads (gensim LDA runs in-process)")
    ap.add_argument("--lda-iterations", type=int, default=1000, help="tomotopy Gibbs iterations")
    ap.add_argument("--gensim-passes", type=int, default=10, help="gensim LdaModel passes")
    ap.add_argument("--work-dir", type=Path, default=Path("runs/quality"), help="skip-gram vector cache")
    ap.add_argument("--json-out", type=Path, default=None, help="write all numbers as JSON")
    ap.add_argument("--only", default=",".join(MODELS), help=f"comma list of {','.join(MODELS)}")
    args = ap.parse_args(argv)
    topics = [int(t) for t in args.topics.split(",") if t.strip()]
    only = [m.strip() for m in args.only.split(",") if m.strip()]
    unknown = sorted(set(only) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) in --only: {unknown}; choose from {list(MODELS)}")
    only = [m for m in MODELS if m in only]

    torch.set_num_threads(args.threads)
    threadpool_limits(limits=args.threads)  # numpy / scipy BLAS, used by gensim's LDA
    logging.basicConfig(level=logging.WARNING)
    t_start = time.perf_counter()
    command = shlex.join(getattr(sys, "orig_argv", [sys.executable, *sys.argv]))
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    machine = f"{cpu_name()}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"
    log(f"$ {command}")
    log(f"date: {started}; machine: {machine}; threads: {args.threads}; torch {torch.__version__}")

    corpus = read_authors_format(args.data / "20ng-etm")
    vocabulary = list(corpus.vocabulary)
    ev = Evaluator(corpus)
    assert corpus.valid_halves is not None
    log(f"data: {corpus.train.counts.shape[0]} training, {corpus.valid_halves[0].shape[0]} validation, "
        f"{corpus.test_halves[0].shape[0]} test documents, V={len(vocabulary)}")

    embeddings, skipgram = None, None
    if "letm" in only or "letm-tuned" in only:
        embeddings, skipgram = skipgram_embeddings(args.data / "20news-bydate.jsonl.gz", vocabulary, args.work_dir,
                                                   args.skipgram_epochs, args.threads)

    rows: list[dict[str, Any]] = []
    samples: list[str] = []
    results: dict[str, Any] = {}

    def write_json() -> None:
        if args.json_out is None:
            return
        results.update(command=command, date=started, machine=machine, threads=args.threads,
                       torch=torch.__version__, args={k: str(v) for k, v in vars(args).items()},
                       skipgram=skipgram, rows=rows, total_seconds=time.perf_counter() - t_start)
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(results, indent=1))

    for k in topics:
        for key in only:
            log(f"K={k}: training {MODELS[key]} ...")
            fitted, extra = run_model(key, k, corpus, ev, args, embeddings)
            s = fitted.by_beta
            row = {"model": fitted.name, "key": key, "k": k, "perplexity": s.perplexity, "coherence": s.coherence,
                   "diversity": s.diversity, "quality": s.quality, "train_seconds": fitted.seconds,
                   "note": fitted.note, **extra,
                   "per_topic_coherence": [round(float(c), 5) for c in s.per_topic_coherence],
                   "top10": [[vocabulary[w] for w in topic] for topic in s.top10]}
            rows.append(row)
            log(f"K={k}: {fitted.name}: ppl {s.perplexity:.0f}, coherence {s.coherence:.3f}, diversity "
                f"{s.diversity:.3f}, quality {s.quality:.3f}, {fitted.seconds:.0f} s ({fitted.note})")
            if k == SAMPLE_K:
                samples.append(sample_topics(fitted, vocabulary))
            write_json()

    total = time.perf_counter() - t_start
    print("\n")
    print(f"$ {command}")
    print(f"date: {started}; machine: {machine}; threads: {args.threads}; torch {torch.__version__}")
    print(f"data: {args.data / '20ng-etm'} (authors' split and vocabulary, V={len(vocabulary)}); ETM: "
          f"{args.epochs} epochs, best validation epoch; gensim: {args.gensim_passes} passes; tomotopy: "
          f"{args.lda_iterations} iterations")
    if skipgram is not None:
        took = "cached" if skipgram["cached"] else f"{skipgram['seconds']:.0f} s"
        print(f"skip-gram: {skipgram['epochs']} epochs ({took}), coverage {skipgram['covered']} of "
              f"{skipgram['vocabulary_size']} words ({100 * skipgram['coverage']:.1f}%)")
    print()
    print(table(rows))
    if samples:
        print(f"\nTop 10 words of topics {', '.join(map(str, SAMPLE_TOPICS))} (unselected) of each K={SAMPLE_K} "
              "model:\n")
        print("\n\n".join(samples))
    print(f"\ntotal runtime: {total:.0f} s")
    write_json()
    return 0


if __name__ == "__main__":
    sys.exit(main())
