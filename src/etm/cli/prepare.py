"""``etm prepare``: raw documents -> a corpus directory (in memory, or streamed into shards with ``--shard-size``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from etm.cli._common import (
    add_preprocessing_options,
    add_reading_options,
    flag,
    make_preprocessor,
    positive_int,
    reader_options,
)
from etm.corpus import is_corpus_dir, open_corpus


def add_parser(sub: Any) -> None:
    """`etm prepare`: raw text -> corpus directory."""
    p = sub.add_parser("prepare", help="raw text -> bag-of-words corpus directory",
                       description="Read documents, build the vocabulary on the training split and write a "
                                   "corpus directory (vocab.txt, sparse .npz, meta.json).")
    p.add_argument("input", help="file or directory with the documents")
    p.add_argument("-o", "--output", required=True, help="corpus directory to write")
    add_reading_options(p)
    g = add_preprocessing_options(p)
    g.add_argument("--seed", type=int, default=0, help="seed of splits and completion halves (default 0)")
    g = p.add_argument_group("inputs larger than memory")
    g.add_argument(*flag("--shard-size"), type=positive_int, default=None, metavar="N",
                   help="stream the input in two passes and write memory-mapped shards of about N training "
                        "documents (training then reads batches from disk); without it the corpus is built in memory")
    p.add_argument(*flag("--export-authors"), default=None, metavar="DIR",
                   help="also write the corpus in the ETM authors' .mat/vocab.pkl format")
    p.add_argument("--force", action="store_true",
                   help="replace a corpus already in OUTPUT (it stays readable until the new one is complete)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from etm.corpus import prepare
    from etm.outputs import plan_corpus_output

    sharded = args.shard_size is not None
    plan = plan_corpus_output(args.output, force=args.force)
    try:
        if sharded and is_corpus_dir(args.input, args.format):
            raise ValueError(f"--shard-size streams raw documents; {args.input} is an already prepared corpus")
        if not sharded and _prepared_elsewhere(args):
            corpus: Any = open_corpus(args.input, args.format).to_prepared()
            report: dict[str, Any] = {"source": str(args.input)}
            corpus.save(plan.work)
        else:  # one pipeline, in memory or (with --shard-size) streamed into shards
            streaming = {"progress": not (args.quiet or args.json)} if sharded else {}
            corpus, report = prepare(
                args.input, make_preprocessor(args), output=plan.work, shard_size=args.shard_size,
                reader_options=reader_options(args), valid_size=args.valid_size, test_size=args.test_size,
                random_state=args.seed, **streaming,
            )
        plan.finish()
    except BaseException:
        plan.abandon()
        raise
    if sharded:  # its shards are read from their files: open them where plan.finish() put them
        corpus = open_corpus(plan.final)
    if args.export_authors:
        corpus.to_prepared().to_authors_format(args.export_authors)
    summary = {"output": str(args.output), **corpus.summary(), "report": report}
    if not args.json:
        (_print_sharded if sharded else _print_in_memory)(args.output, corpus, summary, report)
    return summary


def _prepared_elsewhere(args: argparse.Namespace) -> bool:
    """The input is a corpus prepared by another tool (the authors', OCTIS): converted, not prepared."""
    return args.format in ("authors", "octis") or (
        is_corpus_dir(args.input, args.format) and not (Path(args.input) / "meta.json").is_file())


def _print_in_memory(output: str, corpus: Any, summary: dict[str, Any], report: dict[str, Any]) -> None:
    print(f"wrote {output}: vocabulary {summary['vocabulary_size']} words")
    for name, part in corpus.parts():
        print(f"  {name:5s} {part.n_docs:7d} documents {part.n_tokens:9d} tokens")
    for key, value in report.items():
        if key.startswith(("dropped", "empty")) or (key == "undecodable_bytes" and value):
            print(f"  {key}: {value}")
    if corpus.n_unsplittable:
        print(f"  left out of document completion (fewer than 2 tokens): {corpus.n_unsplittable}")


def _print_sharded(output: str, corpus: Any, summary: dict[str, Any], report: dict[str, Any]) -> None:
    print(f"wrote {output}: vocabulary {summary['vocabulary_size']} words, sharded")
    for name in ("train", "valid", "test"):
        if f"{name}_documents" in summary:
            print(f"  {name:5s} {summary[f'{name}_documents']:9d} documents {summary[f'{name}_tokens']:11d} "
                  f"tokens in {summary[f'{name}_shards']} shards")
    print(f"  dropped_empty: {report['dropped_empty']}")
    if report["undecodable_bytes"]:
        print(f"  undecodable_bytes: {report['undecodable_bytes']}")
    if corpus.n_unsplittable:
        print(f"  left out of document completion (fewer than 2 tokens): {corpus.n_unsplittable}")
