"""``etm evaluate``: document-completion perplexity, coherence, diversity and quality of a model on a corpus."""

from __future__ import annotations

import argparse
import time
from typing import Any

from etm.corpus import open_corpus


def add_parser(sub: Any) -> None:
    """`etm evaluate`: perplexity, coherence, diversity and quality."""
    p = sub.add_parser("evaluate", help="perplexity, coherence, diversity and quality of a model",
                       description="Document-completion perplexity on the corpus's test halves, NPMI coherence "
                                   "(top 10) over its training documents, diversity (top 25) and quality.")
    p.add_argument("model", help="model directory")
    p.add_argument("corpus", help="corpus directory (same vocabulary as the model)")
    p.add_argument("--split", default="test", choices=["test", "valid"], help="halves to score (default test)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel

    est = TopicModel.load(args.model, device=args.device)
    corpus = open_corpus(args.corpus)  # a sharded corpus is streamed shard by shard, never all in memory
    if not corpus.completion_chunks(args.split):
        raise ValueError(f"{args.corpus} has no {args.split} halves to score; prepare it with a {args.split} split")
    n_reference = corpus.n_docs("train")
    t0 = time.perf_counter()
    scores = est.evaluate(corpus, corpus, part=args.split)
    result = {
        "split": args.split,
        "completion_documents": scores["completion_documents"],
        "perplexity_per_document": scores["perplexity_per_document"],
        "perplexity_per_token": scores["perplexity_per_token"],
        "coherence": scores["coherence"],
        "diversity": scores["diversity"],
        "quality": scores["quality"],
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if not args.json:
        print(f"document-completion perplexity on {args.split} halves ({result['completion_documents']} documents)")
        print(f"  per document (authors' form): {result['perplexity_per_document']:.1f}")
        print(f"  per token (corpus level):     {result['perplexity_per_token']:.1f}")
        print(f"topic coherence (NPMI, top 10, over {n_reference} training documents): "
              f"{result['coherence']:.4f}")
        print(f"topic diversity (top 25): {result['diversity']:.4f}")
        print(f"topic quality (coherence x diversity): {result['quality']:.4f}")
    return result
