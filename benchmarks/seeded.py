"""Seeded ETM against its baselines on raw 20 Newsgroups: one seeded topic per newsgroup.

Why this script exists: seeded topics are only worth having if the seeds make the model find the themes an
analyst names better than an unseeded model (matched to the themes after the fact) and better than the
seeded models for LDA-like methods. This script trains every model on the training split of raw 20 Newsgroups
(``../shared/data/20news-bydate.jsonl.gz``) with the seeds of ``examples/seeds/20ng.json`` (at most 8 words
per newsgroup, written from the group names and general knowledge, never mined from the labelled data) and
scores each on the test split:

* accuracy and macro-F1 of the argmax seeded topic against the newsgroup label;
* seed recovery: share of each topic's seed words among its top 10 words;
* NPMI coherence (top 10, over the training documents) of the seeded topics and of all topics, and diversity
  (top 25) of all topics;
* training time.

Models (same vocabulary for all: the demo's preprocessing fitted on the training split):

* seeded ETM variants (20 seeded + ``--free`` free topics) with the default product-of-experts decoder: the
  topic-word seed prior with the document prior (keyATM-style) at two strengths, decaying, and on skip-gram
  embeddings (``--embeddings``); with the paper's mixture decoder: initialisation only, the seed prior at
  several strengths, decaying, without the initialisation, with the document prior, and with the authors'
  objective (dot product, KL weight 1, no token drop, no background);
* unseeded ETM with the same number of topics, topics matched to labels by the best one-to-one assignment
  (``scipy.optimize.linear_sum_assignment``) on the training split;
* anchored CorEx (``corextopic``) with the seed words as anchors;
* GuidedLDA: reported as not installable when its build fails (it does on Python 3.11);
* a supervised ceiling: logistic regression on tf-idf (uses the labels, unlike every other row).

The default variant of etm is chosen on a labelled validation part of the *training* split (10%, the same
documents the ETM uses for early stopping), never on the test split; the table reports both.

Usage::

    python benchmarks/seeded.py [--data ../shared/data] [--epochs 100] [--threads 2] [--embeddings VEC]

About 20 minutes on a 2-core x86 machine.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import accuracy_score, f1_score

from etm.corpus import Corpus
from etm.estimator import TopicModel
from etm.metrics import top_word_indices, topic_coherence_per_topic, topic_diversity
from etm.preprocessing import Preprocessor
from etm.seeding import read_seed_file

ROOT = Path(__file__).resolve().parents[1]
SEED = 2019


def default_data() -> Path:
    env = os.environ.get("ETM_SHARED_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data"


@dataclass
class Row:
    name: str
    accuracy: float | None = None
    macro_f1: float | None = None
    valid_accuracy: float | None = None
    seed_recovery: float | None = None
    coherence_seeded: float | None = None
    coherence_all: float | None = None
    diversity: float | None = None
    seconds: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def read_20ng(path: Path) -> dict[str, tuple[list[str], list[str]]]:
    out: dict[str, tuple[list[str], list[str]]] = {"train": ([], []), "test": ([], [])}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            out[rec["split"]][0].append(rec["text"])
            out[rec["split"]][1].append(rec["label"])
    return out


def topic_scores(beta_or_ranking: np.ndarray, reference: sp.csr_matrix, n_seeded: int,
                 seed_idx: Sequence[Sequence[int]], order: Sequence[int] | None = None) -> dict[str, float]:
    """Coherence of the seeded topics (in label order ``order``) and of all, diversity, seed recovery."""
    top10 = top_word_indices(beta_or_ranking, 10)
    top25 = top_word_indices(beta_or_ranking, 25)
    per_topic = topic_coherence_per_topic(top10, reference)
    seeded = list(order) if order is not None else list(range(n_seeded))
    recovery = np.mean([len(set(seed_idx[i]) & set(top10[k].tolist())) / len(seed_idx[i])
                        for i, k in enumerate(seeded)])
    return {"coherence_seeded": float(np.mean(per_topic[seeded])), "coherence_all": float(np.mean(per_topic)),
            "diversity": topic_diversity(top25), "seed_recovery": float(recovery)}


def classify(theta: np.ndarray, topic_of_label: Sequence[int], labels: Sequence[str]) -> np.ndarray:
    """Argmax over the topics standing for the labels, mapped back to label names."""
    cols = np.asarray(topic_of_label)
    return np.asarray(labels)[theta[:, cols].argmax(axis=1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=default_data())
    ap.add_argument("--seeds", type=Path, default=ROOT / "examples" / "seeds" / "20ng.json")
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--patience", type=int, default=10)
    ap.add_argument("--free", type=int, default=10, help="free topics beside the 20 seeded ones")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embeddings", type=Path, default=None,
                    help="skip-gram vectors over this vocabulary (etm embed) for the labelled variants")
    ap.add_argument("--only", default=None,
                    help="comma list of row names to run (a trailing * matches a prefix), for smoke runs")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=SEED, help="random_state of every model (the split stays seed 2019's)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    raw = read_20ng(args.data / "20news-bydate.jsonl.gz")
    extra = [w.strip() for w in (ROOT / "examples" / "stopwords_extra.txt").read_text().splitlines() if w.strip()]
    pre = Preprocessor(strip_newsgroup=True, min_df=10, max_df=0.5, extra_stop_words=tuple(extra))
    X_train = pre.fit_transform(raw["train"][0])
    X_test = pre.transform(raw["test"][0])
    vocab = pre.vocabulary_
    y_train = np.asarray(raw["train"][1])
    y_test = np.asarray(raw["test"][1])
    keep_tr = np.asarray(X_train.sum(axis=1)).ravel() > 0
    keep_te = np.asarray(X_test.sum(axis=1)).ravel() > 0
    X_train, y_train, X_test, y_test = X_train[keep_tr], y_train[keep_tr], X_test[keep_te], y_test[keep_te]
    # The labelled validation part: the same 10% the estimator holds out (same seed, same split function).
    corpus = Corpus(X_train, vocab, labels=list(y_train))
    parts = corpus.split(valid_size=0.1, test_size=0.0, random_state=SEED)
    train_part, valid_part = parts.train, parts.valid
    y_fit, y_valid = np.asarray(train_part.labels), np.asarray(valid_part.labels)
    log(f"vocabulary {len(vocab)}; train {X_train.shape[0]} (fit {train_part.n_docs}, valid {valid_part.n_docs}), "
        f"test {X_test.shape[0]} documents")

    seeds = read_seed_file(args.seeds)
    resolved = seeds.resolve(vocab)
    labels = list(seeds.names)
    assert set(labels) == set(y_train), "the seeds file must name every newsgroup"
    seed_idx = resolved.indices
    n_seeded = len(labels)
    K = n_seeded + args.free
    reference = X_train
    rows: list[Row] = []
    only = None if args.only is None else [s.strip() for s in args.only.split(",")]

    def wanted(name: str) -> bool:
        return only is None or any(name.startswith(o[:-1]) if o.endswith("*") else name == o for o in only)

    base = dict(epochs=args.epochs, patience=args.patience, device="cpu", random_state=args.seed)

    def etm_row(name: str, **params: Any) -> None:
        if not wanted(name):
            return
        log(f"training {name}")
        t0 = time.perf_counter()
        est = TopicModel(**base, **params).fit(parts)
        seconds = time.perf_counter() - t0
        if est.n_seeded_topics_:
            order = list(range(n_seeded))
            topic_of_label = order
        else:  # best one-to-one assignment of topics to labels on the training split
            theta_fit = est.transform(train_part)
            cost = np.zeros((n_seeded, K))
            for i, lab in enumerate(labels):
                cost[i] = -theta_fit[y_fit == lab].sum(axis=0)
            _, topic_of_label = linear_sum_assignment(cost)
            order = list(topic_of_label)
        pred_test = classify(est.transform(X_test), topic_of_label, labels)
        pred_valid = classify(est.transform(valid_part), topic_of_label, labels)
        row = Row(name, accuracy=accuracy_score(y_test, pred_test),
                  macro_f1=f1_score(y_test, pred_test, average="macro"),
                  valid_accuracy=accuracy_score(y_valid, pred_valid), seconds=seconds,
                  note=f"{est.n_iter_} epochs, best {est.best_epoch_}, valid ppl {est.valid_perplexity_:.0f}")
        for key, value in topic_scores(est.topic_word_, reference, n_seeded, seed_idx, order).items():
            setattr(row, key, value)
        row.extra["topics"] = {labels[i]: est.get_topics(10)[k] for i, k in enumerate(order)}
        rows.append(row)
        log(f"  {row}")

    seeded = dict(seed_topics=seeds.as_dict(), n_free_topics=args.free)  # the product decoder: the default
    mixture = dict(seeded, decoder="mixture")
    etm_row("ETM unseeded, matched", n_topics=K)
    etm_row("seeded ETM: prior 1 + doc prior 3", **seeded, seed_strength=1.0, seed_doc_prior=3.0)
    etm_row("seeded ETM: prior 1 + doc prior 1", **seeded, seed_strength=1.0, seed_doc_prior=1.0)
    etm_row("seeded ETM: prior 1 + raised doc prior 3", **seeded, seed_strength=1.0, seed_doc_prior=3.0,
            seed_doc_centered=False)
    etm_row("seeded ETM: prior 1 + doc prior 6", **seeded, seed_strength=1.0, seed_doc_prior=6.0)
    etm_row("seeded ETM: prior 1 + doc prior 10", **seeded, seed_strength=1.0, seed_doc_prior=10.0)
    etm_row("seeded ETM: prior 1, decaying + doc prior 3", **seeded, seed_strength=1.0, seed_schedule="decay",
            seed_doc_prior=3.0)
    etm_row("seeded ETM mixture: init only", **mixture, seed_strength=0.0, seed_doc_prior=0.0)
    etm_row("seeded ETM mixture: prior 1", **mixture, seed_strength=1.0, seed_doc_prior=0.0)
    etm_row("seeded ETM mixture: prior 5", **mixture, seed_strength=5.0, seed_doc_prior=0.0)
    etm_row("seeded ETM mixture: prior 1, decaying", **mixture, seed_strength=1.0, seed_schedule="decay",
            seed_doc_prior=0.0)
    etm_row("seeded ETM mixture: doc prior 1 only", **mixture, seed_strength=0.0, seed_doc_prior=1.0)
    etm_row("seeded ETM mixture: prior 1 + doc prior 1", **mixture, seed_strength=1.0, seed_doc_prior=1.0)
    etm_row("seeded ETM mixture: prior 1 + doc prior 3", **mixture, seed_strength=1.0, seed_doc_prior=3.0)
    etm_row("seeded ETM mixture: prior 1 + doc prior 10", **mixture, seed_strength=1.0, seed_doc_prior=10.0)
    etm_row("seeded ETM mixture: prior 1 + doc prior 1, no init", **mixture, seed_strength=1.0,
            seed_doc_prior=1.0, seed_init=False)
    authors = dict(mixture, similarity="dot", kl_weight=1.0, encoder_token_drop=0.0, background=False)
    etm_row("seeded ETM (the authors' objective): prior 1 + doc prior 3", **authors, seed_strength=1.0,
            seed_doc_prior=3.0)
    if args.embeddings is not None:
        etm_row("seeded labelled ETM: prior 1 + doc prior 3", **seeded, seed_strength=1.0, seed_doc_prior=3.0,
                embeddings=str(args.embeddings))

    if wanted("anchored CorEx (anchor strength 3)"):
        log("training anchored CorEx")
        from corextopic import corextopic as ct

        t0 = time.perf_counter()
        binary = lambda m: (m > 0).astype(np.int32).tocsr()  # noqa: E731 - CorEx models word presence
        corex = ct.Corex(n_hidden=K, seed=SEED, max_iter=200)
        corex.fit(binary(train_part.counts), words=vocab, anchors=[list(seed_idx[i]) for i in range(n_seeded)],
                  anchor_strength=3)
        seconds = time.perf_counter() - t0
        p_test = corex.transform(binary(X_test), details=True)[0]
        p_valid = corex.transform(binary(valid_part.counts), details=True)[0]
        order = list(range(n_seeded))
        pred_test = classify(p_test, order, labels)
        pred_valid = classify(p_valid, order, labels)
        # Topic words ranked by CorEx's own weight (mutual information of the word with the topic).
        ranking = np.zeros((K, len(vocab)))
        for k in range(K):
            for rank, (w, *_rest) in enumerate(corex.get_topics(topic=k, n_words=25, print_words=False)):
                ranking[k, w if isinstance(w, (int, np.integer)) else vocab.index(w)] = 100 - rank
        row = Row("anchored CorEx (anchor strength 3)", accuracy=accuracy_score(y_test, pred_test),
                  macro_f1=f1_score(y_test, pred_test, average="macro"),
                  valid_accuracy=accuracy_score(y_valid, pred_valid), seconds=seconds)
        for key, value in topic_scores(ranking, reference, n_seeded, seed_idx, order).items():
            setattr(row, key, value)
        rows.append(row)
        log(f"  {row}")

    try:
        import guidedlda  # noqa: F401

        rows.append(Row("GuidedLDA", note="installed but not wired up in this script"))
    except ImportError:
        rows.append(Row("GuidedLDA", note="not installable here: `pip install guidedlda` fails to build its wheel "
                                          "on Python 3.11"))

    if wanted("logistic regression on tf-idf (supervised ceiling)"):
        log("training logistic regression")
        from sklearn.feature_extraction.text import TfidfTransformer
        from sklearn.linear_model import LogisticRegression

        t0 = time.perf_counter()
        tfidf = TfidfTransformer().fit(train_part.counts)
        clf = LogisticRegression(max_iter=2000, C=10.0).fit(tfidf.transform(train_part.counts), y_fit)
        seconds = time.perf_counter() - t0
        pred_test = clf.predict(tfidf.transform(X_test))
        rows.append(Row("logistic regression on tf-idf (supervised ceiling)",
                        accuracy=accuracy_score(y_test, pred_test),
                        macro_f1=f1_score(y_test, pred_test, average="macro"),
                        valid_accuracy=accuracy_score(y_valid, clf.predict(tfidf.transform(valid_part.counts))),
                        seconds=seconds, note="uses the training labels"))

    def cell(x: float | None, fmt: str = "{:.3f}") -> str:
        return "n/a" if x is None else fmt.format(x)

    print(f"Seeded topics on raw 20 Newsgroups, {date.today()}, {platform.machine()} {os.cpu_count()} cores, "
          f"{args.threads} threads; vocabulary {len(vocab)}, {X_train.shape[0]} training / {X_test.shape[0]} test "
          f"documents, K = {n_seeded} seeded + {args.free} free")
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}\n")
    print("| model | accuracy | macro-F1 | valid acc. | seed recovery | NPMI (seeded) | NPMI (all) | diversity "
          "| time (s) | notes |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.name} | {cell(r.accuracy)} | {cell(r.macro_f1)} | {cell(r.valid_accuracy)} | "
              f"{cell(r.seed_recovery)} | {cell(r.coherence_seeded)} | {cell(r.coherence_all)} | "
              f"{cell(r.diversity)} | {cell(r.seconds, '{:.0f}')} | {r.note} |")
    candidates = [r for r in rows if r.name.startswith("seeded") and r.valid_accuracy is not None]
    if candidates:
        best = max(candidates, key=lambda r: r.valid_accuracy)
        print(f"\nbest seeded variant on the validation split: {best.name} (valid accuracy {best.valid_accuracy:.3f})")
        for lab, words in list(best.extra.get("topics", {}).items())[:8]:
            print(f"  {lab:26s} {' '.join(words)}")
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps([r.__dict__ for r in rows], indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
