"""``etm label``: label documents with their most probable seeded topic (CSV/TSV/JSON)."""

from __future__ import annotations

import argparse
import logging
from collections import Counter
from typing import Any

import numpy as np

from etm.cli._common import (
    add_reading_options,
    document_chunks,
    positive_int,
)

logger = logging.getLogger("etm.cli")


def add_parser(sub: Any) -> None:
    """`etm label`: each document's most probable seeded topic."""
    p = sub.add_parser("label", help="label documents with their most probable seeded topic (CSV/JSON)",
                       description="Give each document the name of its most probable seeded topic and that "
                                   "topic's proportion ('none' below --threshold, and with proportion 0 for a "
                                   "document without any word of the model's vocabulary), plus every seeded topic's "
                                   "proportion. A corpus directory's documents keep its ids and get a split column.")
    p.add_argument("model", help="model directory (trained with --seeds)")
    p.add_argument("input", help="documents (any `etm prepare` input format) or a corpus directory")
    p.add_argument("-o", "--output", required=True, help="output file: .csv, .tsv or .json")
    p.add_argument("--threshold", type=float, default=0.0,
                   help="label 'none' when the best seeded proportion is below this (default 0)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: all of this process's CPUs)")
    add_reading_options(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.device import reuse_freed_memory, set_threads
    from etm.estimator import TopicModel
    from etm.theta_output import check_label_output, write_labels

    out = check_label_output(args.output)
    if args.threads is not None:
        set_threads(args.threads)
    reuse_freed_memory()
    est = TopicModel.load(args.model, device=args.device)
    if not est.n_seeded_topics_:
        logger.warning("%s has no seeded topics: documents are labelled with their most probable topic", args.model)
    n = est.n_seeded_topics_ or len(est.topic_names_)
    rows = _label_rows(est, args, n)
    names = est.topic_names_[:n]
    write_labels(out, rows["documents"], rows["labels"], rows["proportion"], rows["theta"], names,
                 splits=rows["splits"])
    tally = Counter(rows["labels"])
    counts = {name: tally[name] for name in [*names, "none"]}
    summary = {"output": str(out), "documents": len(rows["labels"]), "labels": counts, **rows["report"]}
    if not args.json:
        print(f"labelled {summary['documents']} documents -> {out}")
        for name, c in sorted(counts.items(), key=lambda kv: -kv[1]):
            if c:
                print(f"  {name}: {c}")
        if summary.get("empty_documents"):
            print(f"  ({summary['empty_documents']} of the 'none' had no word of the model's vocabulary)")
    return summary


def _label_rows(est: Any, args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Every document's id, split (corpus directories), label, its proportion and the n seeded proportions.

    Documents without a vocabulary word get "none", proportion 0 and zero
    proportions, not the encoder's output for an empty input.
    """
    docs: list[str] = []
    splits: list[str] = []
    labels: list[str] = []
    shares, thetas = [], []
    report: Counter[str] = Counter()
    for X, ids, split in document_chunks(args, chunk_size=10_000):
        theta, lengths, chunk_report = est.transform_with_lengths(X)
        label, share = est.label_theta(theta, threshold=args.threshold, lengths=lengths)
        docs += ids if ids is not None else [str(len(docs) + i) for i in range(theta.shape[0])]
        splits += [split] * theta.shape[0] if split is not None else []
        labels += [str(lab) for lab in label]
        shares.append(share)
        thetas.append(np.where((lengths == 0)[:, None], 0.0, theta[:, :n]))
        report.update(chunk_report)
    if not labels:
        raise ValueError(f"{args.input} has no documents to label")
    return {"documents": docs, "splits": splits or None, "labels": labels, "report": dict(report),
            "proportion": np.concatenate(shares), "theta": np.concatenate(thetas)}
