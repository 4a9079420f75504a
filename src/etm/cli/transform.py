"""``etm transform``: topic proportions of documents, streamed to a CSV/TSV/NPY/Parquet file."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from etm.cli._common import (
    add_reading_options,
    document_chunks,
    flag,
    positive_int,
)


def add_parser(sub: Any) -> None:
    """`etm transform`: topic proportions of documents, streamed to a file."""
    p = sub.add_parser("transform", help="topic proportions of new documents",
                       description="Map documents through the model's vocabulary (unknown words are counted) "
                                   "and write one row of K topic proportions per document.")
    p.add_argument("model", help="model directory")
    p.add_argument("input", help="documents (any `etm prepare` input format) or a corpus directory")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .csv, .tsv, .npy or .parquet (with pyarrow); written as documents stream in")
    p.add_argument(*flag("--chunk-size"), type=positive_int, default=10000,
                   help="documents read, inferred and written at a time (default 10000)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="CPU threads (default: all of this process's CPUs)")
    add_reading_options(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.device import reuse_freed_memory, set_threads
    from etm.estimator import TopicModel
    from etm.theta_output import ThetaWriter

    if args.threads is not None:
        set_threads(args.threads)
    reuse_freed_memory()
    est = TopicModel.load(args.model, device=args.device)
    out = Path(args.output)
    totals: Counter[str] = Counter()
    t0 = time.perf_counter()
    with ThetaWriter(out, est.topic_names_) as writer:  # rows stream out; the file appears when complete
        for X, ids, _ in document_chunks(args, chunk_size=args.chunk_size):
            theta, report = est.transform_with_report(X)
            writer.write(theta, ids)
            totals.update(report)
    seconds = time.perf_counter() - t0
    summary = {"output": str(out), "shape": [writer.rows_written, len(est.topic_names_)], **totals,
               "seconds": round(seconds, 3), "documents_per_second": round(writer.rows_written / max(seconds, 1e-9), 1)}
    if not args.json:
        print(f"wrote {writer.rows_written} x {len(est.topic_names_)} topic proportions to {out}")
        if totals.get("unknown_tokens"):
            print(f"  {totals['unknown_tokens']} tokens were not in the model's vocabulary and were ignored")
        if totals.get("empty_documents"):
            print(f"  {totals['empty_documents']} documents had no word of the model's vocabulary")
    return summary
