"""``etm topics``: the top words of each topic of a model."""

from __future__ import annotations

import argparse
from typing import Any

from etm.cli._common import (
    positive_int,
    print_topics,
)


def add_parser(sub: Any) -> None:
    """`etm topics`: the top words of each topic."""
    p = sub.add_parser("topics", help="list the top words of each topic")
    p.add_argument("model", help="model directory")
    p.add_argument("-n", "--words", type=positive_int, default=10, help="words per topic (default 10)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel

    est = TopicModel.load(args.model, device="cpu")
    topics = est.get_topics(args.words)
    if not args.json:
        print_topics(topics, names=est.topic_names_ if est.n_seeded_topics_ else None)
    return {"topics": topics, "topic_names": est.topic_names_}
