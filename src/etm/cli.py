"""The ``etm`` command line: prepare | embed | train | evaluate | topics | neighbors | transform | plot.

Human-readable output goes to stdout, logs to stderr; ``--json`` prints one
JSON document instead, for scripts. Option names follow the authors'
``main.py`` (``--num_topics`` and ``--num-topics`` both work).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from etm import cli_tune

logger = logging.getLogger("etm.cli")

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _flag(*names: str) -> list[str]:
    """``--num-topics`` plus the authors' ``--num_topics`` spelling."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if "-" in name[2:]:
            out.append("--" + name[2:].replace("-", "_"))
    return out


def _int_at_least(text: str, least: int, meaning: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be {meaning}, got {value}")
    return value


def _positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (``topics -n 0`` listed nothing, ``-n -2`` every word)."""
    return _int_at_least(text, 1, "a positive integer")


def _non_negative_int(text: str) -> int:
    """argparse type of counts where 0 means none (``train --topics 0`` prints no topics)."""
    return _int_at_least(text, 0, "0 or more")


def _add_reading_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reading the input")
    g.add_argument("--format", default="auto",
                   choices=["auto", "text", "jsonl", "csv", "tsv", "folder", "authors", "octis"],
                   help="input format (default: from the file name; a directory with vocab.pkl is the authors' "
                        "format, one with corpus.tsv is OCTIS's)")
    g.add_argument(*_flag("--text-field"), default="text", help="JSONL field / CSV column with the text")
    g.add_argument(*_flag("--label-field"), default=None, help="JSONL field / CSV column with a label")
    g.add_argument(*_flag("--split-field"), default=None, help="JSONL field / CSV column with train/valid/test")
    g.add_argument(*_flag("--id-field"), default=None, help="JSONL field / CSV column with a document id")
    g.add_argument("--encoding", default="utf-8", help="text encoding of the input (default utf-8)")
    g.add_argument(*_flag("--encoding-errors"), default="strict",
                   choices=["strict", "replace", "ignore", "backslashreplace"],
                   help="undecodable bytes: stop with an error naming file and line (strict, the default), or "
                        "replace, drop or backslash-escape them and report how many")


def _add_preprocessing_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Tokenising, vocabulary and split options, shared by `etm prepare` and `etm train` on raw text."""
    g = p.add_argument_group("preprocessing (scikit-learn CountVectorizer)")
    g.add_argument(*_flag("--min-df"), type=float, default=1, help="ignore words in fewer documents "
                   "(an integer count, or a fraction below 1; default 1)")
    g.add_argument(*_flag("--max-df"), type=float, default=1.0, help="ignore words in more documents "
                   "(a fraction, or an integer count above 1; default 1.0)")
    g.add_argument(*_flag("--max-features"), type=_positive_int, default=None, help="keep only the most frequent words")
    g.add_argument(*_flag("--stop-words"), default="english", help="'english' (default) or 'none'")
    g.add_argument(*_flag("--extra-stop-words"), default=None,
                   help="more stop words: a comma-separated list or a file with one word per line")
    g.add_argument(*_flag("--token-pattern"), default=None, help="regular expression of a token")
    g.add_argument(*_flag("--no-lowercase"), action="store_true", help="keep the case of words")
    g.add_argument(*_flag("--strip-newsgroup"), action="store_true",
                   help="remove e-mail headers, signatures and quoted replies (newsgroup-style text)")
    g = p.add_argument_group("splits")
    g.add_argument(*_flag("--valid-size"), type=float, default=0.1, help="validation share (default 0.1)")
    g.add_argument(*_flag("--test-size"), type=float, default=0.1,
                   help="test share when the input has no split column (default 0.1)")
    return g


def _add_prepare_parser(sub: Any) -> None:
    """`etm prepare`: raw text -> corpus directory."""
    p = sub.add_parser("prepare", help="raw text -> bag-of-words corpus directory",
                       description="Read documents, build the vocabulary on the training split and write a "
                                   "corpus directory (vocab.txt, sparse .npz, meta.json).")
    p.add_argument("input", help="file or directory with the documents")
    p.add_argument("-o", "--output", required=True, help="corpus directory to write")
    _add_reading_options(p)
    g = _add_preprocessing_options(p)
    g.add_argument("--seed", type=int, default=0, help="seed of splits and completion halves (default 0)")
    g = p.add_argument_group("inputs larger than memory")
    g.add_argument(*_flag("--shard-size"), type=_positive_int, default=None, metavar="N",
                   help="stream the input in two passes and write memory-mapped shards of about N training "
                        "documents (training then reads batches from disk); without it the corpus is built in memory")
    p.add_argument(*_flag("--export-authors"), default=None, metavar="DIR",
                   help="also write the corpus in the ETM authors' .mat/vocab.pkl format")
    p.add_argument("--force", action="store_true",
                   help="replace a corpus already in OUTPUT (it stays readable until the new one is complete)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def _add_train_parser(sub: Any) -> None:
    """`etm train`: the training options come from :mod:`etm.options`, the rest is how and where it runs."""
    from etm.options import add_training_options, training_groups

    p = sub.add_parser("train", help="train an ETM on a prepared corpus",
                       description="Train with the authors' defaults; the best epoch is chosen on the "
                                   "validation split's document-completion perplexity.")
    p.add_argument("corpus", help="corpus directory from `etm prepare`, an authors'/OCTIS directory, or raw "
                                  "documents (any `etm prepare` input: prepared on the fly into OUTPUT/corpus)")
    p.add_argument("-o", "--output", required=True, help="model directory to write")
    _add_reading_options(p)
    g = _add_preprocessing_options(p)
    g.add_argument(*_flag("--split-seed"), type=int, default=0,
                   help="raw input: seed of splits and completion halves (default 0)")
    groups = training_groups(p)
    g = groups["embeddings"]
    g.add_argument("--embeddings", *_flag("--emb-path"), dest="embeddings", default=None, metavar="FILE",
                   help="word2vec text/binary, GloVe or fastText .vec file (e.g. from `etm embed`); only the "
                        "vocabulary's rows are read and they are stored in the model")
    g.add_argument(*_flag("--embeddings-format"), default="auto",
                   choices=["auto", "word2vec", "word2vec-binary", "glove", "fasttext"],
                   help="format of --embeddings (default: detected)")
    groups["seeding"].add_argument(
        "--seeds", default=None, metavar="FILE",
        help="JSON or YAML file of topic name -> seed words; seeded topics come first and keep their names")
    add_training_options(groups)
    g = groups["optimisation"]
    g.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps (default auto)")
    g.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads per process (default: the process's CPUs, shared out between --nproc processes; "
                        "also ETM_THREADS)")
    g.add_argument("--nproc", type=_positive_int, default=1,
                   help="data-parallel processes on this machine (runs torchrun; default 1). Across machines, start "
                        "`torchrun --nnodes M --nproc_per_node N ... -m etm train ...` on each")
    g = groups["checkpoints"]
    g.add_argument(*_flag("--checkpoint-dir"), default=None,
                   help="where resumable checkpoints go (default: OUTPUT/checkpoints)")
    g.add_argument("--resume", action="store_true",
                   help="continue the training whose checkpoint is in OUTPUT, exactly where it stopped (settings "
                        "such as --lr and --epochs may change; the model's shape may not)")
    g.add_argument("--force", action="store_true",
                   help="replace a model already in OUTPUT; the old one stays readable until the new one is complete")
    p.add_argument("--topics", type=_non_negative_int, default=10, help="topics to print at the end (default 10)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print a JSON summary")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="etm",
        description="Embedded Topic Model (Dieng, Ruiz & Blei, 2020): prepare a corpus, train, evaluate, "
                    "list topics and infer topic proportions.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_prepare_parser(sub)
    _add_train_parser(sub)
    cli_tune.add_parser(sub)

    # embed -------------------------------------------------------------------
    p = sub.add_parser("embed", help="train skip-gram word embeddings on documents (word2vec text output)",
                       description="Train skip-gram embeddings with gensim's Word2Vec and the authors' settings, "
                                   "for `etm train --embeddings`. Tokens are produced as `etm prepare` does; with "
                                   "--corpus, with that corpus's preprocessing and only its vocabulary's words.")
    p.add_argument("input", help="documents (any `etm prepare` input format)")
    p.add_argument("-o", "--output", required=True, help="vectors file to write (word2vec text; .bin: binary)")
    _add_reading_options(p)
    p.add_argument("--corpus", default=None, metavar="DIR",
                   help="prepared corpus whose preprocessing and vocabulary to use (recommended)")
    p.add_argument(*_flag("--strip-newsgroup"), action="store_true",
                   help="without --corpus: remove e-mail headers, signatures and quoted replies")
    p.add_argument("--split", default="train", choices=["train", "all"],
                   help="documents to learn from: train (default; the --corpus's training documents by id, else "
                        "those the --split-field marks, so test text never leaks) or all")
    g = p.add_argument_group("skip-gram (the authors' defaults)")
    g.add_argument("--dim", *_flag("--dim-rho"), dest="dim", type=_positive_int, default=300,
                   help="dimensions (default 300)")
    g.add_argument(*_flag("--window-size"), type=_positive_int, default=4, help="context window (default 4)")
    g.add_argument(*_flag("--negative-samples"), type=_positive_int, default=10, help="negative samples (default 10)")
    g.add_argument(*_flag("--min-count"), type=_non_negative_int, default=2, help="ignore rarer words (default 2)")
    g.add_argument("--iters", type=_positive_int, default=50, help="passes over the text (default 50)")
    g.add_argument("--workers", type=_positive_int, default=1,
                   help="threads; more than 1 is faster but not reproducible run to run (default 1)")
    g.add_argument("--seed", type=int, default=2019, help="random seed (default 2019)")
    p.add_argument("--json", action="store_true")

    # neighbors ------------------------------------------------------------------
    p = sub.add_parser("neighbors", help="nearest words of words and topics in the embedding space",
                       description="Cosine nearest neighbours in the model's embedding space: of each WORD, and "
                                   "with --topics of each topic embedding.")
    p.add_argument("model", help="model directory")
    p.add_argument("words", nargs="*", help="query words (must be in the model's vocabulary)")
    p.add_argument("--topics", action="store_true", help="also list the nearest words of each topic embedding")
    p.add_argument("-n", "--neighbors", type=_positive_int, default=10, help="neighbours per query (default 10)")
    p.add_argument("--json", action="store_true")

    # label -----------------------------------------------------------------------
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
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads (default: all of this process's CPUs)")
    _add_reading_options(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    # plot ------------------------------------------------------------------------
    p = sub.add_parser("plot", help="figures of a model (top words, training curves, embedding map, prevalence)",
                       description="Write topics, training, embeddings and (with --corpus) prevalence figures to "
                                   "OUTPUT; --ldavis adds the pyLDAvis inputs (and an HTML page when pyLDAvis "
                                   "is installed).")
    p.add_argument("model", help="model directory")
    p.add_argument("-o", "--output", required=True, help="directory for the figures")
    p.add_argument("--corpus", default=None, help="corpus directory for prevalence and pyLDAvis (its training part)")
    p.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help="figure format (default png)")
    p.add_argument("--method", default="pca", choices=["pca", "tsne"], help="2-D projection (default pca)")
    p.add_argument("-n", "--words", type=_positive_int, default=10,
                   help="words per topic in the bar charts (default 10)")
    p.add_argument("--ldavis", action="store_true", help="also export pyLDAvis data (needs --corpus)")
    p.add_argument("--json", action="store_true")

    # evaluate ------------------------------------------------------------------
    p = sub.add_parser("evaluate", help="perplexity, coherence, diversity and quality of a model",
                       description="Document-completion perplexity on the corpus's test halves, NPMI coherence "
                                   "(top 10) over its training documents, diversity (top 25) and quality.")
    p.add_argument("model", help="model directory")
    p.add_argument("corpus", help="corpus directory (same vocabulary as the model)")
    p.add_argument("--split", default="test", choices=["test", "valid"], help="halves to score (default test)")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")

    # topics ----------------------------------------------------------------------
    p = sub.add_parser("topics", help="list the top words of each topic")
    p.add_argument("model", help="model directory")
    p.add_argument("-n", "--words", type=_positive_int, default=10, help="words per topic (default 10)")
    p.add_argument("--json", action="store_true")

    # transform -----------------------------------------------------------------
    p = sub.add_parser("transform", help="topic proportions of new documents",
                       description="Map documents through the model's vocabulary (unknown words are counted) "
                                   "and write one row of K topic proportions per document.")
    p.add_argument("model", help="model directory")
    p.add_argument("input", help="documents (any `etm prepare` input format) or a corpus directory")
    p.add_argument("-o", "--output", required=True,
                   help="output file: .csv, .tsv, .npy or .parquet (with pyarrow); written as documents stream in")
    p.add_argument(*_flag("--chunk-size"), type=_positive_int, default=10000,
                   help="documents read, inferred and written at a time (default 10000)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="CPU threads (default: all of this process's CPUs)")
    _add_reading_options(p)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    return parser


# -- commands ----------------------------------------------------------------------
def _read_stop_words(value: str | None) -> list[str]:
    if not value:
        return []
    path = Path(value)
    if path.is_file():
        from etm._io import read_text_checked

        return [w.strip() for w in read_text_checked(path).splitlines() if w.strip()]
    return [w.strip() for w in value.split(",") if w.strip()]


def _open_corpus(path: str, fmt: str = "auto") -> Any:
    """Any prepared corpus directory as a :class:`~etm.corpus.CorpusSource` (see :func:`etm.shards.open_corpus`)."""
    from etm.shards import open_corpus

    return open_corpus(path, fmt)


def _is_corpus_dir(path: str, fmt: str = "auto") -> bool:
    from etm.shards import is_corpus_dir

    return is_corpus_dir(path, fmt)


def _prepare_raw(args: argparse.Namespace, source: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """Read raw documents and build a PreparedCorpus with the command's preprocessing options."""
    from etm.readers import prepare_corpus, read_documents

    raw = read_documents(source, **_reader_options(args))
    return prepare_corpus(raw, _make_preprocessor(args), valid_size=args.valid_size, test_size=args.test_size,
                          random_state=seed)


def _reader_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"format": args.format, "encoding": args.encoding, "encoding_errors": args.encoding_errors,
            "text_field": args.text_field, "label_field": args.label_field, "split_field": args.split_field,
            "id_field": args.id_field}


def _make_preprocessor(args: argparse.Namespace) -> Any:
    from etm.preprocessing import Preprocessor

    return Preprocessor(
        lowercase=not args.no_lowercase,
        stop_words=None if args.stop_words.lower() == "none" else args.stop_words,
        extra_stop_words=tuple(_read_stop_words(args.extra_stop_words)),
        min_df=int(args.min_df) if float(args.min_df).is_integer() and args.min_df >= 1 else args.min_df,
        max_df=int(args.max_df) if args.max_df > 1 else args.max_df,
        max_features=args.max_features,
        strip_newsgroup=args.strip_newsgroup,
        **({"token_pattern": args.token_pattern} if args.token_pattern else {}),
    )


def cmd_prepare(args: argparse.Namespace) -> dict[str, Any]:
    from etm.outputs import plan_corpus_output

    plan = plan_corpus_output(args.output, force=args.force)
    try:
        if args.shard_size is not None:
            return _prepare_sharded(args)
        if args.format in ("authors", "octis") or (_is_corpus_dir(args.input, args.format)
                                                   and not (Path(args.input) / "meta.json").is_file()):
            prepared = _open_corpus(args.input, args.format).to_prepared()
            report: dict[str, Any] = {"source": str(args.input)}
        else:
            prepared, report = _prepare_raw(args, args.input, args.seed)
        prepared.save(plan.work)
        plan.finish()
    except BaseException:
        plan.abandon()
        raise
    if args.export_authors:
        prepared.to_authors_format(args.export_authors)
    summary = {"output": str(args.output), **prepared.summary(), "report": report}
    if not args.json:
        print(f"wrote {args.output}: vocabulary {summary['vocabulary_size']} words")
        for name, part in prepared.parts():
            print(f"  {name:5s} {part.n_docs:7d} documents {part.n_tokens:9d} tokens")
        for key, value in report.items():
            if key.startswith(("dropped", "empty")) or (key == "undecodable_bytes" and value):
                print(f"  {key}: {value}")
        if prepared.n_unsplittable:
            print(f"  left out of document completion (fewer than 2 tokens): {prepared.n_unsplittable}")
    return summary


def _prepare_sharded(args: argparse.Namespace) -> dict[str, Any]:
    from etm.shards import prepare_sharded

    if _is_corpus_dir(args.input, args.format):
        raise ValueError(f"--shard-size streams raw documents; {args.input} is an already prepared corpus")
    corpus, report = prepare_sharded(
        args.input, _make_preprocessor(args), args.output, reader_options=_reader_options(args),
        shard_size=args.shard_size, valid_size=args.valid_size, test_size=args.test_size, random_state=args.seed,
        progress=not (args.quiet or args.json),
    )
    if args.export_authors:
        corpus.to_prepared().to_authors_format(args.export_authors)
    summary = {"output": str(args.output), **corpus.summary(), "report": report}
    if not args.json:
        print(f"wrote {args.output}: vocabulary {summary['vocabulary_size']} words, sharded")
        for name in ("train", "valid", "test"):
            if f"{name}_documents" in summary:
                print(f"  {name:5s} {summary[f'{name}_documents']:9d} documents {summary[f'{name}_tokens']:11d} "
                      f"tokens in {summary[f'{name}_shards']} shards")
        print(f"  dropped_empty: {report['dropped_empty']}")
        if report["undecodable_bytes"]:
            print(f"  undecodable_bytes: {report['undecodable_bytes']}")
        if corpus.n_unsplittable:
            print(f"  left out of document completion (fewer than 2 tokens): {corpus.n_unsplittable}")
    return summary


def _print_topics(topics: Sequence[Sequence[str]], limit: int | None = None,
                  names: Sequence[str] | None = None) -> None:
    width = max((len(n) for n in names), default=0) if names else 0
    for k, words in enumerate(topics[: len(topics) if limit is None else limit]):
        label = f"{names[k]:{width}s}" if names else f"topic {k:3d}"
        print(f"  {label}: {' '.join(words)}")


def cmd_train(args: argparse.Namespace) -> dict[str, Any] | None:
    from etm.distributed import init_from_environment, launched_by_torchrun, shutdown

    if not launched_by_torchrun():
        if args.threads is not None:
            from etm.device import set_threads

            set_threads(args.threads)
        return _train(args, args.device, lead=True)
    device = init_from_environment(args.device, args.threads)
    try:
        from etm.distributed import is_main_process

        return _train(args, str(device), lead=is_main_process())
    finally:
        shutdown()


def _train(args: argparse.Namespace, device: str, *, lead: bool) -> dict[str, Any] | None:
    """Train; in a data-parallel run every process calls this and only the main one writes and prints."""

    from etm.outputs import plan_model_output

    if args.force and args.resume:
        raise ValueError("--force starts a new model and --resume continues one: give one of them")
    plan = plan_model_output(args.output, checkpoint_dir=args.checkpoint_dir, force=args.force, resume=args.resume,
                             dry_run=not lead)
    try:
        return _train_into(args, device, plan, lead=lead)
    except KeyboardInterrupt:
        raise
    except BaseException:
        plan.abandon()
        raise


def _train_into(args: argparse.Namespace, device: str, plan: Any, *, lead: bool) -> dict[str, Any] | None:
    from etm.estimator import TopicModel
    from etm.options import estimator_kwargs

    out = plan.work
    if _is_corpus_dir(args.corpus):  # a sharded corpus stays on disk
        corpus = _open_corpus(args.corpus)
    else:  # raw documents: prepare them with the preprocessing options and keep the corpus beside the model
        corpus, report = _prepare_raw(args, args.corpus, args.split_seed)
        if lead:
            corpus.save(out / "corpus")
        logger.info("prepared %s into %s: vocabulary %d words, %s", args.corpus, plan.final / "corpus",
                    len(corpus.vocabulary), {k: v for k, v in report.items() if k.startswith("dropped")})
    if lead and not corpus.completion_chunks("valid"):
        logger.warning("%s has no validation split: the last epoch is kept", args.corpus)
    ckpt = Path(args.checkpoint_dir) if args.checkpoint_dir else out / "checkpoints"
    est = TopicModel(
        **estimator_kwargs(args), embeddings=_read_embeddings_arg(args, corpus.vocabulary), seed_topics=args.seeds,
        device=device, checkpoint_dir=str(ckpt), verbose=lead and not (args.quiet or args.json),
    )
    est.provenance_ = {"corpus": str(Path(args.corpus).resolve()), "command": "etm train"}
    pre = corpus.settings.get("preprocessing") if corpus.settings else None
    t0 = time.perf_counter()
    try:
        est.fit(corpus, resume=args.resume)
    except KeyboardInterrupt:
        if lead:
            print(f"\ninterrupted: a resumable checkpoint is in {ckpt / 'last'}; continue with the same "
                  f"command{' with --resume instead of --force' if args.force else ' plus --resume'}",
                  file=sys.stderr)
        raise
    if not lead:
        return None
    if pre is not None:
        from etm.preprocessing import Preprocessor

        est.preprocessor_ = Preprocessor.from_settings(pre, vocabulary=est.vocabulary_)
    est.save(out)
    from etm._io import atomic_write_text

    atomic_write_text(out / "history.json", json.dumps(est.history_, indent=1))
    plan.finish()
    out = plan.final
    summary = {
        "output": str(out),
        "embeddings": est.embedding_report_,
        "epochs_run": est.n_iter_,
        "best_epoch": est.best_epoch_,
        "valid_perplexity": est.valid_perplexity_,
        "seconds": round(time.perf_counter() - t0, 2),
        "device": est.device_,
        "topic_names": est.topic_names_,
        "topics": est.get_topics(10),
        "seeding": est.seed_report_,
        "batch_size": est.batch_size_,
        "collapse": est.collapse_,
    }
    if not args.json:
        ppl = "n/a" if est.valid_perplexity_ is None else f"{est.valid_perplexity_:.1f}"
        if est.embedding_report_:
            rep = est.embedding_report_
            print(f"pretrained embeddings {rep['source']}: {rep['covered']} of {rep['vocabulary_size']} words "
                  f"({100 * rep['coverage']:.1f}%), {rep['dimension']} dimensions, "
                  f"{'fine-tuned' if args.fine_tune_embeddings else 'fixed'}")
        print(f"trained {est.n_iter_} epochs in {summary['seconds']} s on {est.device_}; best epoch "
              f"{est.best_epoch_}, validation perplexity {ppl}; model saved to {out}")
        _print_topics(summary["topics"], args.topics, est.topic_names_ if est.n_seeded_topics_ else None)
    return summary


def _read_embeddings_arg(args: argparse.Namespace, vocabulary: Sequence[str]) -> Any:
    if not args.embeddings:
        if args.fine_tune_embeddings:
            raise ValueError("--fine-tune-embeddings needs --embeddings FILE")
        return None
    from etm.embeddings import load_embeddings

    return load_embeddings(args.embeddings, vocabulary, format=args.embeddings_format, random_state=args.random_state)


def cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
    from etm.embeddings import save_word2vec, train_skipgram
    from etm.preprocessing import Preprocessor
    from etm.readers import read_documents

    raw = read_documents(args.input, **_reader_options(args))
    corpus = _open_corpus(args.corpus) if args.corpus else None
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


def cmd_neighbors(args: argparse.Namespace) -> dict[str, Any]:
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


def cmd_plot(args: argparse.Namespace) -> dict[str, Any]:
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

        corpus = _open_corpus(args.corpus).to_prepared()
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


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel

    est = TopicModel.load(args.model, device=args.device)
    corpus = _open_corpus(args.corpus)  # a sharded corpus is streamed shard by shard, never all in memory
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


def cmd_topics(args: argparse.Namespace) -> dict[str, Any]:
    from etm.estimator import TopicModel

    est = TopicModel.load(args.model, device="cpu")
    topics = est.get_topics(args.words)
    if not args.json:
        _print_topics(topics, names=est.topic_names_ if est.n_seeded_topics_ else None)
    return {"topics": topics, "topic_names": est.topic_names_}


def cmd_transform(args: argparse.Namespace) -> dict[str, Any]:
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
        for X, ids, _ in _document_chunks(args, chunk_size=args.chunk_size):
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


def _document_chunks(args: argparse.Namespace, chunk_size: int) -> Any:
    """Documents to run a model on, ``chunk_size`` at a time: (texts or Corpus, ids, split) triples.

    A corpus directory gives all its parts (a sharded one shard by shard,
    from the memory maps) with the ids it records (None when it has none) and
    the part's name; raw input is streamed, never read whole, with its ids
    and split None.
    """
    if _is_corpus_dir(args.input):  # any prepared corpus; a sharded one shard by shard, from the memory maps
        yield from _open_corpus(args.input).document_chunks(chunk_size)
        return
    from etm.readers import iter_documents

    texts: list[str] = []
    ids: list[str] = []
    for record in iter_documents(args.input, **_reader_options(args)):
        texts.append(record.text)
        ids.append(record.doc_id)
        if len(texts) == chunk_size:
            yield texts, ids, None
            texts, ids = [], []
    if texts:
        yield texts, ids, None


def cmd_label(args: argparse.Namespace) -> dict[str, Any]:
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
    for X, ids, split in _document_chunks(args, chunk_size=10_000):
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


COMMANDS = {
    "prepare": cmd_prepare,
    "train": cmd_train,
    "evaluate": cmd_evaluate,
    "topics": cmd_topics,
    "transform": cmd_transform,
    "embed": cmd_embed,
    "neighbors": cmd_neighbors,
    "plot": cmd_plot,
    "label": cmd_label,
    "tune": lambda args: cli_tune.run(args),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse printed a usage error (e.g. --epochs 0): return its code; --help exits
        if stop.code == EXIT_USAGE:
            return EXIT_USAGE
        raise
    if args.version:
        from etm._version import __version__

        print(f"etm {__version__}")
        return 0
    if not args.command:
        parser.print_help()
        return EXIT_USAGE
    level = logging.WARNING - 10 * min(args.verbose + 1, 2) if args.verbose else logging.WARNING
    if args.command in ("train", "tune") and not args.verbose:
        level = logging.INFO if not getattr(args, "json", False) else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.command == "train" and args.nproc > 1:
        from etm.distributed import launch, launched_by_torchrun

        if not launched_by_torchrun():
            return launch(_without_option(list(sys.argv[1:] if argv is None else argv), "--nproc"), args.nproc)
    try:
        result = COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except (OSError, ValueError, TypeError, KeyError, UnicodeDecodeError, RuntimeError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if isinstance(err, UnicodeDecodeError):
            message = err.reason
        print(f"etm {args.command}: error: {message}", file=sys.stderr)
        return 1
    if result is None:  # a data-parallel worker other than the main one: nothing to report
        return 0
    try:
        if args.json:
            print(json.dumps(result, indent=1, default=_json_default))
        sys.stdout.flush()
    except BrokenPipeError:  # e.g. `etm topics M --json | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _without_option(argv: list[str], name: str) -> list[str]:
    """``argv`` without ``name VALUE`` / ``name=VALUE`` (to re-run a command under torchrun)."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
