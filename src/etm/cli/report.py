"""``etm report``: one self-contained HTML page about a model (see :mod:`etm.report`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from etm.cli._common import flag, positive_int
from etm.corpus import is_corpus_dir, open_corpus

logger = logging.getLogger("etm.cli")


def add_parser(sub: Any) -> None:
    """`etm report MODEL [--corpus CORPUS] [--documents RAW] -o report.html`."""
    p = sub.add_parser(
        "report", help="one self-contained HTML report of a model (works offline)",
        description="Write one HTML page about a model: settings, metrics and training curves, every topic with "
                    "its top words, coherence, prevalence and most representative documents, a map of topic and "
                    "word embeddings, a word search and the pyLDAvis view. Every script is inlined: the page "
                    "opens from disk and makes no network request.")
    p.add_argument("model", help="model directory")
    p.add_argument("-o", "--output", required=True, help="the .html file to write")
    p.add_argument("--corpus", default=None,
                   help="corpus directory (default: MODEL/corpus when `etm train` kept one there, else the corpus "
                        "the model was trained on, when it still exists)")
    p.add_argument("--documents", default=None, metavar="RAW",
                   help="raw documents (any `etm prepare` input) for snippets of the representative documents, "
                        "matched to the corpus by id (default: the raw file the corpus records as its source, "
                        "when it exists)")
    p.add_argument(*flag("--no-documents"), action="store_true", help="show no document text")
    g = p.add_argument_group("reading RAW (as `etm prepare` read it)")
    g.add_argument("--format", default="auto", choices=["auto", "text", "jsonl", "csv", "tsv", "folder"])
    g.add_argument(*flag("--text-field"), default="text", help="JSONL field / CSV column with the text")
    g.add_argument(*flag("--id-field"), default=None, help="JSONL field / CSV column with the document id")
    g.add_argument("--encoding", default="utf-8", help="text encoding of RAW (default utf-8)")
    g.add_argument(*flag("--encoding-errors"), default="strict",
                   choices=["strict", "replace", "ignore", "backslashreplace"], help="undecodable bytes in RAW")
    g = p.add_argument_group("what the page shows")
    g.add_argument("--title", default=None, help="page title")
    g.add_argument("-n", "--words", type=positive_int, default=10, help="top words per topic (default 10)")
    g.add_argument(*flag("--documents-per-topic"), type=positive_int, default=5,
                   help="representative documents per topic (default 5)")
    g.add_argument(*flag("--max-documents"), type=positive_int, default=20_000,
                   help="training documents behind prevalence, representative documents and pyLDAvis "
                        "(the first ones; default 20000)")
    g.add_argument(*flag("--map-words"), type=positive_int, default=2_000,
                   help="words on the map at most (default 2000)")
    g.add_argument(*flag("--search-words"), type=positive_int, default=5_000,
                   help="words the search box knows (default 5000)")
    g.add_argument("--method", default="pca", choices=["pca", "tsne"], help="map projection (default pca)")
    g.add_argument(*flag("--no-ldavis"), action="store_true", help="leave out the pyLDAvis view")
    p.add_argument("--json", action="store_true")


def _default_corpus(model_dir: Path, provenance: dict[str, Any] | None) -> str | None:
    """MODEL/corpus, else the corpus directory the model records it was trained on, when either exists."""
    for candidate in (model_dir / "corpus", (provenance or {}).get("corpus")):
        if candidate and Path(candidate).is_dir() and is_corpus_dir(str(candidate)):
            return str(candidate)
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel
    from etm.report import write_report

    est = TopicModel.load(args.model, device="cpu")
    where = args.corpus or _default_corpus(Path(args.model), getattr(est, "provenance_", None))
    if where is None:
        logger.warning("no corpus for %s: the report has no prevalence, coherence, representative documents or "
                       "pyLDAvis view; pass --corpus", args.model)
    elif not args.corpus:
        logger.info("using the corpus %s", where)
    corpus = None if where is None else open_corpus(where)
    if args.no_documents and args.documents:
        raise ValueError("--documents and --no-documents contradict each other: give one")
    documents: Any = {} if args.no_documents else args.documents
    reader = {"format": args.format, "text_field": args.text_field, "id_field": args.id_field,
              "encoding": args.encoding, "encoding_errors": args.encoding_errors}
    out = write_report(
        est, args.output, corpus, documents=documents, reader_options=reader, corpus_name=where, title=args.title,
        n_words=args.words, n_documents=args.documents_per_topic, max_documents=args.max_documents,
        map_words=args.map_words, search_words=args.search_words, method=args.method, ldavis=not args.no_ldavis)
    result = {"output": str(out), "bytes": out.stat().st_size, "corpus": where}
    if not args.json:
        print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB): open it in a browser, no network needed")
    return result
