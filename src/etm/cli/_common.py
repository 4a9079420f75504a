"""What several commands share: argument types, reading and preprocessing options, topic printing."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from etm.corpus import is_corpus_dir, open_corpus


def flag(*names: str) -> list[str]:
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


def positive_int(text: str) -> int:
    """argparse type of counts that must be at least 1 (``topics -n 0`` listed nothing, ``-n -2`` every word)."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """argparse type of counts where 0 means none (``train --topics 0`` prints no topics)."""
    return _int_at_least(text, 0, "0 or more")


def add_reading_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("reading the input")
    g.add_argument("--format", default="auto",
                   choices=["auto", "text", "jsonl", "csv", "tsv", "folder", "authors", "octis"],
                   help="input format (default: from the file name; a directory with vocab.pkl is the authors' "
                        "format, one with corpus.tsv is OCTIS's)")
    g.add_argument(*flag("--text-field"), default="text", help="JSONL field / CSV column with the text")
    g.add_argument(*flag("--label-field"), default=None, help="JSONL field / CSV column with a label")
    g.add_argument(*flag("--split-field"), default=None, help="JSONL field / CSV column with train/valid/test")
    g.add_argument(*flag("--id-field"), default=None, help="JSONL field / CSV column with a document id")
    g.add_argument("--encoding", default="utf-8", help="text encoding of the input (default utf-8)")
    g.add_argument(*flag("--encoding-errors"), default="strict",
                   choices=["strict", "replace", "ignore", "backslashreplace"],
                   help="undecodable bytes: stop with an error naming file and line (strict, the default), or "
                        "replace, drop or backslash-escape them and report how many")


def add_preprocessing_options(p: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """Tokenising, vocabulary and split options, shared by `etm prepare` and `etm train` on raw text."""
    g = p.add_argument_group("preprocessing (scikit-learn CountVectorizer)")
    g.add_argument(*flag("--min-df"), type=float, default=1, help="ignore words in fewer documents "
                   "(an integer count, or a fraction below 1; default 1)")
    g.add_argument(*flag("--max-df"), type=float, default=1.0, help="ignore words in more documents "
                   "(a fraction, or an integer count above 1; default 1.0)")
    g.add_argument(*flag("--max-features"), type=positive_int, default=None, help="keep only the most frequent words")
    g.add_argument(*flag("--stop-words"), default="english", help="'english' (default) or 'none'")
    g.add_argument(*flag("--extra-stop-words"), default=None,
                   help="more stop words: a comma-separated list or a file with one word per line")
    g.add_argument(*flag("--token-pattern"), default=None, help="regular expression of a token")
    g.add_argument(*flag("--no-lowercase"), action="store_true", help="keep the case of words")
    g.add_argument(*flag("--strip-newsgroup"), action="store_true",
                   help="remove e-mail headers, signatures and quoted replies (newsgroup-style text)")
    g = p.add_argument_group("splits")
    g.add_argument(*flag("--valid-size"), type=float, default=0.1, help="validation share (default 0.1)")
    g.add_argument(*flag("--test-size"), type=float, default=0.1,
                   help="test share when the input has no split column (default 0.1)")
    return g


def _read_stop_words(value: str | None) -> list[str]:
    if not value:
        return []
    path = Path(value)
    if path.is_file():
        from etm._io import read_text_checked

        return [w.strip() for w in read_text_checked(path).splitlines() if w.strip()]
    return [w.strip() for w in value.split(",") if w.strip()]


def prepare_raw(args: argparse.Namespace, source: str, seed: int) -> tuple[Any, dict[str, Any]]:
    """Read raw documents and build a PreparedCorpus with the command's preprocessing options."""
    from etm.corpus import prepare_corpus, read_documents

    raw = read_documents(source, **reader_options(args))
    return prepare_corpus(raw, make_preprocessor(args), valid_size=args.valid_size, test_size=args.test_size,
                          random_state=seed)


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"format": args.format, "encoding": args.encoding, "encoding_errors": args.encoding_errors,
            "text_field": args.text_field, "label_field": args.label_field, "split_field": args.split_field,
            "id_field": args.id_field}


def make_preprocessor(args: argparse.Namespace) -> Any:
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


def print_topics(topics: Sequence[Sequence[str]], limit: int | None = None,
                  names: Sequence[str] | None = None) -> None:
    width = max((len(n) for n in names), default=0) if names else 0
    for k, words in enumerate(topics[: len(topics) if limit is None else limit]):
        label = f"{names[k]:{width}s}" if names else f"topic {k:3d}"
        print(f"  {label}: {' '.join(words)}")


def document_chunks(args: argparse.Namespace, chunk_size: int) -> Any:
    """Documents to run a model on, ``chunk_size`` at a time: (texts or Corpus, ids, split) triples.

    A corpus directory gives all its parts (a sharded one shard by shard,
    from the memory maps) with the ids it records (None when it has none) and
    the part's name; raw input is streamed, never read whole, with its ids
    and split None.
    """
    if is_corpus_dir(args.input):  # any prepared corpus; a sharded one shard by shard, from the memory maps
        yield from open_corpus(args.input).document_chunks(chunk_size)
        return
    from etm.corpus import iter_documents

    texts: list[str] = []
    ids: list[str] = []
    for record in iter_documents(args.input, **reader_options(args)):
        texts.append(record.text)
        ids.append(record.doc_id)
        if len(texts) == chunk_size:
            yield texts, ids, None
            texts, ids = [], []
    if texts:
        yield texts, ids, None
