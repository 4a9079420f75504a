"""``etm embed``: skip-gram word embeddings (word2vec format) for ``etm train --embeddings``."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from etm.cli._common import (
    add_reading_options,
    flag,
    non_negative_int,
    positive_int,
    reader_options,
)
from etm.corpus import open_corpus

logger = logging.getLogger("etm.cli")


def add_parser(sub: Any) -> None:
    """`etm embed`: skip-gram vectors for `etm train --embeddings`."""
    p = sub.add_parser("embed", help="train skip-gram word embeddings on documents (word2vec text output)",
                       description="Train skip-gram embeddings with gensim's Word2Vec and the authors' settings, "
                                   "for `etm train --embeddings`. Tokens are produced as `etm prepare` does; with "
                                   "--corpus, with that corpus's preprocessing and only its vocabulary's words.")
    p.add_argument("input", help="documents (any `etm prepare` input format)")
    p.add_argument("-o", "--output", required=True, help="vectors file to write (word2vec text; .bin: binary)")
    add_reading_options(p)
    p.add_argument("--corpus", default=None, metavar="DIR",
                   help="prepared corpus whose preprocessing and vocabulary to use (recommended)")
    p.add_argument(*flag("--strip-newsgroup"), action="store_true",
                   help="without --corpus: remove e-mail headers, signatures and quoted replies")
    p.add_argument("--split", default="train", choices=["train", "all"],
                   help="documents to learn from: train (default; the --corpus's training documents by id, else "
                        "those the --split-field marks, so test text never leaks) or all")
    g = p.add_argument_group("skip-gram (the authors' defaults)")
    g.add_argument("--dim", *flag("--dim-rho"), dest="dim", type=positive_int, default=300,
                   help="dimensions (default 300)")
    g.add_argument(*flag("--window-size"), type=positive_int, default=4, help="context window (default 4)")
    g.add_argument(*flag("--negative-samples"), type=positive_int, default=10, help="negative samples (default 10)")
    g.add_argument(*flag("--min-count"), type=non_negative_int, default=2, help="ignore rarer words (default 2)")
    g.add_argument("--iters", type=positive_int, default=50, help="passes over the text (default 50)")
    g.add_argument("--workers", type=positive_int, default=1,
                   help="threads; more than 1 is faster but not reproducible run to run (default 1)")
    g.add_argument("--seed", type=int, default=2019, help="random seed (default 2019)")
    p.add_argument("--json", action="store_true")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.corpus import read_documents
    from etm.embeddings import save_word2vec, train_skipgram
    from etm.preprocessing import Preprocessor

    raw = read_documents(args.input, **reader_options(args))
    corpus = open_corpus(args.corpus) if args.corpus else None
    if corpus is not None:
        settings = (corpus.settings or {}).get("preprocessing")
        if settings is None:
            raise ValueError(f"{args.corpus} records no preprocessing settings; run without --corpus")
        pre = Preprocessor.from_settings(settings, vocabulary=corpus.vocabulary)
    else:
        pre = Preprocessor(strip_newsgroup=args.strip_newsgroup)
    texts = _embedding_texts(args, raw, corpus)
    t0 = time.perf_counter()
    sentences = pre.tokenize(texts)
    n_tokens = sum(len(s) for s in sentences)
    logger.info("training skip-gram on %d documents, %d tokens", len(sentences), n_tokens)
    vectors = train_skipgram(sentences, vector_size=args.dim, window=args.window_size,
                             negative=args.negative_samples, min_count=args.min_count, epochs=args.iters,
                             workers=args.workers, seed=args.seed)
    out = save_word2vec(vectors, args.output, binary=Path(args.output).suffix == ".bin")
    summary = {"output": str(out), "documents": len(sentences), "tokens": n_tokens, "words": len(vectors),
               "dimension": int(vectors.vector_size), "seconds": round(time.perf_counter() - t0, 2)}
    if corpus is not None:
        summary["corpus_coverage"] = round(sum(w in vectors.key_to_index for w in corpus.vocabulary)
                                           / len(corpus.vocabulary), 6)
    if not args.json:
        print(f"wrote {summary['words']} vectors of {summary['dimension']} dimensions to {out} "
              f"({summary['documents']} documents, {n_tokens} tokens, {summary['seconds']} s)")
        if "corpus_coverage" in summary:
            print(f"  they cover {100 * summary['corpus_coverage']:.1f}% of the corpus vocabulary")
    return summary


def _embedding_texts(args: argparse.Namespace, raw: Any, corpus: Any) -> list[str]:
    """The documents `etm embed` learns from: with ``--split train``, never a held-out one without saying so.

    Vectors learned from test documents carry their word co-occurrences into
    a model that is then scored on them. The training documents are, best
    first: those ``--corpus`` lists by id, those the split field marks, or,
    with neither, all of them (refused with ``--corpus``, warned without).
    """
    if args.split == "all":
        return raw.texts
    train_ids = _training_ids(corpus, args.corpus) if corpus is not None else None
    if train_ids is not None:
        return _texts_by_id(raw, train_ids, args)
    if raw.splits is not None:
        return [t for t, s in zip(raw.texts, raw.splits) if s == "train"]
    if corpus is not None:
        raise ValueError(
            f"{args.input} has no split field and {args.corpus} records no document ids, so --split train cannot "
            f"tell its training documents from its test documents: learning from all {len(raw.texts)} would leak "
            "the test text into the embeddings the model is then evaluated with. Pass --split-field FIELD (the "
            "input's train/valid/test field), or --split all to learn from every document anyway"
        )
    logger.warning("%s has no split field: learning from all %d documents, test documents included; pass "
                   "--split-field FIELD to keep them out (or --split all to silence this)", args.input, len(raw.texts))
    return raw.texts


def _training_ids(corpus: Any, where: str) -> set[str] | None:
    """Ids of the corpus's training documents, when it records ids that tell them from the held-out ones."""
    ids = {name: part.doc_ids for name, part in corpus.parts()}
    if any(v is None for v in ids.values()):
        return None
    train = set(ids.pop("train").tolist())
    shared = {i for v in ids.values() for i in v.tolist() if i in train}
    if shared:
        logger.info("%s gives training and held-out documents the same id (e.g. %r): not choosing by id",
                    where, next(iter(shared)))
        return None
    return train


def _texts_by_id(raw: Any, train_ids: set[str], args: argparse.Namespace) -> list[str]:
    """The raw documents whose ids are those of the corpus's training documents."""
    texts = [t for t, i in zip(raw.texts, raw.doc_ids or []) if i in train_ids]
    if not texts:
        raise ValueError(
            f"none of the {len(raw.texts)} documents of {args.input} has the id of a training document of "
            f"{args.corpus} (e.g. {next(iter(train_ids))!r} there, {(raw.doc_ids or ['none'])[0]!r} here): read "
            "the input with the --id-field (and --format) `etm prepare` was given"
        )
    logger.info("learning from the %d documents that %s lists as training documents (%d others left out)",
                len(texts), args.corpus, len(raw.texts) - len(texts))
    return texts
