"""``etm neighbors``: nearest words of words and topics in a model's embedding space."""

from __future__ import annotations

import argparse
from typing import Any

from etm.cli._common import (
    positive_int,
)


def add_parser(sub: Any) -> None:
    """`etm neighbors`: nearest words in the model's embedding space."""
    p = sub.add_parser("neighbors", help="nearest words of words and topics in the embedding space",
                       description="Cosine nearest neighbours in the model's embedding space: of each WORD, and "
                                   "with --topics of each topic embedding.")
    p.add_argument("model", help="model directory")
    p.add_argument("words", nargs="*", help="query words (must be in the model's vocabulary)")
    p.add_argument("--topics", action="store_true", help="also list the nearest words of each topic embedding")
    p.add_argument("-n", "--neighbors", type=positive_int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel

    if not args.words and not args.topics:
        raise ValueError("give query words, --topics, or both")
    est = TopicModel.load(args.model, device="cpu")
    result: dict[str, Any] = {"words": {w: est.nearest_words(w, args.neighbors) for w in args.words}}
    if args.topics:
        result["topics"] = est.topic_neighbors(args.neighbors)
        result["topic_names"] = est.topic_names_
    if not args.json:
        for word, near in result["words"].items():
            print(f"{word}: " + ", ".join(f"{w} ({s:.2f})" for w, s in near))
        names = est.topic_names_ if est.n_seeded_topics_ else [f"topic {k:3d}" for k in range(len(est.topic_names_))]
        for name, near in zip(names, result.get("topics", [])):
            print(f"{name}: " + " ".join(w for w, _ in near))
    return result
