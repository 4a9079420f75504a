"""``etm plot``: figures of a model: top words, training curves, embedding map, prevalence, pyLDAvis."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from etm.cli._common import (
    positive_int,
)
from etm.corpus import open_corpus

logger = logging.getLogger("etm.cli")


def add_parser(sub: Any) -> None:
    """`etm plot`: figures of a model."""
    p = sub.add_parser("plot", help="figures of a model (top words, training curves, embedding map, prevalence)",
                       description="Write topics, training, embeddings and (with --corpus) prevalence figures to "
                                   "OUTPUT; --ldavis adds the pyLDAvis inputs (and an HTML page when pyLDAvis "
                                   "is installed).")
    p.add_argument("model", help="model directory")
    p.add_argument("-o", "--output", required=True, help="directory for the figures")
    p.add_argument("--corpus", default=None, help="corpus directory for prevalence and pyLDAvis (its training part)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help="figure format (default png)")
    p.add_argument("--method", default="pca", choices=["pca", "tsne"], help="2-D projection (default pca)")
    p.add_argument("-n", "--words", type=positive_int, default=10,
                   help="words per topic in the bar charts (default 10)")
    p.add_argument("--ldavis", action="store_true", help="also export pyLDAvis data (needs --corpus)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel

    if args.ldavis and not args.corpus:
        raise ValueError("--ldavis needs --corpus: pyLDAvis shows topics over a set of documents")
    est = TopicModel.load(args.model, device="cpu")
    out = Path(args.output)
    ext = "." + args.format
    written = {"topics": est.plot_topics(out / f"topics{ext}", n_words=args.words),
               "embeddings": est.plot_embeddings(out / f"embeddings{ext}", method=args.method)}
    if est.history_:
        written["training"] = est.plot_training(out / f"training{ext}")
    else:
        logger.warning("%s has no training history: no training curves", args.model)
    if args.corpus:
        from etm.corpus import check_same_vocabulary

        corpus = open_corpus(args.corpus).to_prepared()
        check_same_vocabulary(corpus.vocabulary, est.vocabulary_, left="corpus", right="model")
        written["prevalence"] = est.plot_prevalence(corpus.train, out / f"prevalence{ext}")
        if args.ldavis:
            for kind, path in est.export_pyldavis(corpus.train, out).items():
                written[f"ldavis_{kind}"] = path
    result = {k: str(v) for k, v in written.items()}
    if not args.json:
        for kind, path in result.items():
            print(f"{kind:12s} {path}")
    return result
