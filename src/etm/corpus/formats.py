"""Reading corpora that other tools have already preprocessed: the ETM authors' and OCTIS's.

Published ETM numbers were computed on corpora made by the ETM authors' scripts
(Dieng et al., 2020: ``vocab.pkl`` plus ``bow_*_{tokens,counts}.mat``), and
OCTIS ships its benchmark datasets as ``corpus.tsv`` plus ``vocabulary.txt``.
Reading those files as they are, instead of re-tokenising the raw text, keeps
the vocabulary, the splits and (for the authors' files) the test completion
halves exactly theirs, so perplexities and coherences stay comparable with the
papers and with other OCTIS models.

Both readers return a :class:`~etm.corpus.PreparedCorpus`; :mod:`etm.readers`
re-exports them. The files may come from anywhere, so ``vocab.pkl`` is read with
an unpickler that refuses every class or function reference, and every error
names the file (and line) at fault.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from etm._io import _lines, _normalise_split, _read_text
from etm.corpus.memory import Corpus, PreparedCorpus, split_halves

logger = logging.getLogger("etm.formats")  # the name logs print and users filter on (kept from before the move)

__all__ = ["read_authors_format", "read_octis"]


# --------------------------------------------------------------------------- #
# The ETM authors' format
# --------------------------------------------------------------------------- #
class _NoGlobalsUnpickler(pickle.Unpickler):
    """Unpickles only built-in containers and scalars: any class or function reference is refused.

    A pickle can run arbitrary code through the globals it references, so an
    untrusted ``vocab.pkl`` must never meet plain ``pickle.load``.
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: vocab.pkl must hold only a list of str")


def _load_vocab_pkl(path: Path) -> list[str]:
    try:
        with open(path, "rb") as fh:
            vocab = _NoGlobalsUnpickler(fh).load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"{path}: {err}") from None
    except (EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as err:
        raise ValueError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from None
    if not isinstance(vocab, list):
        raise ValueError(f"{path}: expected a list of str, got a {type(vocab).__name__}")
    bad = next((i for i, w in enumerate(vocab) if not isinstance(w, str)), None)
    if bad is not None:
        raise ValueError(f"{path}: expected a list of str, but item {bad} is a {type(vocab[bad]).__name__}")
    if not vocab:
        raise ValueError(f"{path}: the vocabulary is empty")
    return vocab


def _load_mat_rows(path: Path, key: str) -> list[np.ndarray]:
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as err:  # scipy raises several types for a damaged file
        raise ValueError(f"{path}: not a readable .mat file ({type(err).__name__}: {err})") from None
    if key not in mat:
        keys = [k for k in mat if not k.startswith("__")]
        raise ValueError(f"{path}: no variable {key!r}; it has {keys}")
    arr = mat[key]
    if arr.dtype != object:
        raise ValueError(
            f"{path}: {key!r} should be a (1, D) cell array with one array per document, got a {arr.dtype} array "
            f"of shape {arr.shape}"
        )
    return [np.asarray(x).ravel() for x in arr.ravel()]


def _rows_to_csr(tokens: list[np.ndarray], counts: list[np.ndarray], n_words: int, tok_path: Path) -> sp.csr_matrix:
    if len(tokens) != len(counts):
        raise ValueError(f"{tok_path} has {len(tokens)} documents but its counts file has {len(counts)}")
    lengths = np.fromiter((t.size for t in tokens), dtype=np.int64, count=len(tokens))
    count_lengths = np.fromiter((c.size for c in counts), dtype=np.int64, count=len(counts))
    if not np.array_equal(lengths, count_lengths):
        doc = int(np.flatnonzero(lengths != count_lengths)[0])
        raise ValueError(
            f"{tok_path}: document {doc} has {lengths[doc]} tokens but {count_lengths[doc]} counts in its counts file"
        )
    cols = np.concatenate(tokens).astype(np.int64) if tokens else np.zeros(0, np.int64)
    data = np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, np.int64)
    if cols.size and (cols.min() < 0 or cols.max() >= n_words):
        raise ValueError(f"{tok_path}: word index {int(cols.max())} is outside the {n_words}-word vocabulary")
    if data.size and data.min() < 0:
        raise ValueError(f"{tok_path}: negative counts in its counts file")
    rows = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
    matrix = sp.csr_matrix((data.astype(np.int32), (rows, cols)), shape=(len(tokens), n_words))
    matrix.sum_duplicates()
    return matrix


#: The ``bow_{key}_*.mat`` parts of an export, in the order they are checked and read.
_AUTHORS_PARTS = ("tr", "va", "ts", "ts_h1", "ts_h2")
#: Groups of parts an export may leave out, each all or nothing (``PreparedCorpus.to_authors_format``
#: writes no ``va`` for a corpus without a validation part).
_AUTHORS_OPTIONAL = (("va",), ("ts_h1", "ts_h2"))


def _authors_files(key: str) -> list[str]:
    return [f"bow_{key}_{kind}.mat" for kind in ("tokens", "counts")]


def _read_authors_files(root: Path) -> tuple[list[str], dict[str, sp.csr_matrix]]:
    """The vocabulary and a CSR matrix per part present (``tr``, ``va``, ``ts``, ``ts_h1``, ``ts_h2``)."""
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist or is not a folder")
    left_out = {
        key
        for group in _AUTHORS_OPTIONAL
        if not any((root / name).is_file() for k in group for name in _authors_files(k))
        for key in group
    }
    keys = [key for key in _AUTHORS_PARTS if key not in left_out]
    needed = ["vocab.pkl"] + [name for key in keys for name in _authors_files(key)]
    missing = [name for name in needed if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{root} is missing {', '.join(missing)} (ETM authors' format)")
    vocab = _load_vocab_pkl(root / "vocab.pkl")
    mats: dict[str, sp.csr_matrix] = {}
    for key in keys:
        tok_path = root / f"bow_{key}_tokens.mat"
        tokens = _load_mat_rows(tok_path, "tokens")
        counts = _load_mat_rows(root / f"bow_{key}_counts.mat", "counts")
        mats[key] = _rows_to_csr(tokens, counts, len(vocab), tok_path)
    if "ts_h1" in mats and mats["ts_h1"].shape[0] != mats["ts_h2"].shape[0]:
        raise ValueError(
            f"{root}: bow_ts_h1 has {mats['ts_h1'].shape[0]} documents but bow_ts_h2 has {mats['ts_h2'].shape[0]}"
        )
    return vocab, mats


def read_authors_format(directory: str | os.PathLike[str], *, random_state: int | None = 0) -> PreparedCorpus:
    """Read a corpus preprocessed by the ETM authors' scripts (Dieng et al., 2020).

    Files: ``vocab.pkl`` (a pickled list of V words, read with an unpickler
    that refuses every class or function reference) and
    ``bow_{tr,va,ts,ts_h1,ts_h2}_{tokens,counts}.mat`` (variables ``tokens`` /
    ``counts``: a (1, D) cell of word-index / count arrays per document).
    ``vocab.pkl``, ``bow_tr_*`` and ``bow_ts_*`` are required; ``bow_va_*``
    and ``bow_ts_h1_*``/``bow_ts_h2_*`` may be left out together (an export
    that has some but not all files of such a group is an error naming the
    missing ones).

    Parameters
    ----------
    directory : path-like
    random_state : int or None, default=0
        Seeds the completion halves of the *validation* documents, and of the
        test documents when ``ts_h1``/``ts_h2`` are missing. Given test halves
        are used exactly as the authors made them, so perplexities stay
        comparable with the paper.

    Returns
    -------
    PreparedCorpus
        ``train`` = tr, ``valid`` = va (None without ``bow_va_*``), ``test`` = ts,
        ``test_halves`` = (ts_h1, ts_h2), or halves drawn from ts when those are missing.
    """
    root = Path(directory)
    vocab, mats = _read_authors_files(root)
    given_halves = "ts_h1" in mats
    parts: dict[str, Corpus] = {}
    dropped: dict[str, int] = {}
    for name, key in (("train", "tr"), ("valid", "va"), ("test", "ts")):
        if key not in mats:
            dropped[name] = 0
            continue
        part, dropped[name] = Corpus(
            mats[key], vocab, doc_ids=[f"{key} {i}" for i in range(mats[key].shape[0])]
        ).drop_empty()
        if dropped[name]:
            logger.warning("%s: dropped %d empty %s documents", root, dropped[name], name)
        parts[name] = part
    valid = parts["valid"] if "valid" in parts and parts["valid"].n_docs else None
    test = parts["test"] if parts["test"].n_docs else None
    # One generator for both parts, as in PreparedCorpus.from_splits; validation draws first,
    # so its halves are the ones split_halves(valid.counts, random_state) gives.
    rng = np.random.default_rng(random_state)
    n_unsplittable: dict[str, int] = {}
    test_halves: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
    if given_halves:
        empty_halves = int(((mats["ts_h1"].getnnz(axis=1) == 0) | (mats["ts_h2"].getnnz(axis=1) == 0)).sum())
        if empty_halves:
            logger.warning("%s: %d test documents have an empty half in bow_ts_h1/bow_ts_h2", root, empty_halves)
        n_unsplittable["test"] = 0
        test_halves = (mats["ts_h1"], mats["ts_h2"])
    valid_halves = None
    if valid is not None:
        first, second, kept = split_halves(valid.counts, rng)
        valid_halves = (first, second)
        n_unsplittable["valid"] = valid.n_docs - kept.size
    if not given_halves and test is not None:
        first, second, kept = split_halves(test.counts, rng)
        test_halves = (first, second)
        n_unsplittable["test"] = test.n_docs - kept.size
        logger.info(
            "%s: no bow_ts_h1/bow_ts_h2 files; drew completion halves for %d of %d test documents",
            root,
            kept.size,
            test.n_docs,
        )
    logger.info(
        "read ETM authors' corpus %s: V=%d, %d train, %d valid, %d test documents",
        root,
        len(vocab),
        parts["train"].n_docs,
        valid.n_docs if valid is not None else 0,
        parts["test"].n_docs,
    )
    return PreparedCorpus(
        train=parts["train"],
        valid=valid,
        test=test,
        valid_halves=valid_halves,
        test_halves=test_halves,
        settings={
            "source": str(root),
            "format": "etm-authors",
            "random_state": random_state,
            "dropped_empty": dropped,
        },
        n_unsplittable=n_unsplittable,
    )


# --------------------------------------------------------------------------- #
# OCTIS
# --------------------------------------------------------------------------- #
def read_octis(directory: str | os.PathLike[str], *, random_state: int | None = 0) -> PreparedCorpus:
    """Read an OCTIS preprocessed dataset: ``corpus.tsv`` plus ``vocabulary.txt``.

    ``corpus.tsv`` has one document per line, ``tokens<TAB>split<TAB>label``
    with space-separated tokens and split ``train``/``val``/``test`` (the label
    column is optional). Tokens missing from ``vocabulary.txt`` are counted,
    logged and left out; documents left empty are dropped and counted.

    Parameters
    ----------
    directory : path-like
    random_state : int or None, default=0
        Seeds the completion halves of validation and test documents.

    Returns
    -------
    PreparedCorpus
        Labels are kept; ``doc_ids`` are ``"line N"`` of ``corpus.tsv``.
    """
    root = Path(directory)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist or is not a folder")
    corpus_path, vocab_path = root / "corpus.tsv", root / "vocabulary.txt"
    for needed in (corpus_path, vocab_path):
        if not needed.is_file():
            raise FileNotFoundError(f"{needed} is missing (OCTIS dataset format)")
    _, vocab_text = _read_text(vocab_path, "utf-8")
    vocab = [w.strip() for w in _lines(vocab_text) if w.strip()]
    if not vocab:
        raise ValueError(f"{vocab_path} has no words")
    index = {w: i for i, w in enumerate(vocab)}
    if len(index) != len(vocab):
        raise ValueError(f"{vocab_path} lists a word twice")
    _, corpus_text = _read_text(corpus_path, "utf-8")
    by_split: dict[str, dict[str, list[Any]]] = {
        name: {"rows": [], "labels": [], "ids": []} for name in ("train", "valid", "test")
    }
    n_unknown = 0
    has_labels = None
    for lineno, line in enumerate(_lines(corpus_text), start=1):
        if not line.strip():
            continue
        where = f"{corpus_path}, line {lineno}"
        fields = line.split("\t")
        if len(fields) not in (2, 3):
            raise ValueError(f"{where}: expected tokens<TAB>split<TAB>label, got {len(fields)} tab-separated fields")
        if has_labels is None:
            has_labels = len(fields) == 3
        split = _normalise_split(fields[1], where)
        words = fields[0].split()
        cols = [index[w] for w in words if w in index]
        n_unknown += len(words) - len(cols)
        bucket = by_split[split]
        bucket["rows"].append(cols)
        bucket["labels"].append(fields[2] if len(fields) == 3 else "")
        bucket["ids"].append(f"line {lineno}")
    if not any(b["rows"] for b in by_split.values()):
        raise ValueError(f"{corpus_path} has no documents")
    if n_unknown:
        logger.warning("%s: %d tokens are not in %s and were left out", corpus_path, n_unknown, vocab_path.name)
    parts: dict[str, Corpus | None] = {}
    dropped: dict[str, int] = {}
    for name, bucket in by_split.items():
        if not bucket["rows"]:
            parts[name], dropped[name] = None, 0
            continue
        counts = _lists_to_csr(bucket["rows"], len(vocab))
        corpus = Corpus(counts, vocab, labels=bucket["labels"] if has_labels else None, doc_ids=bucket["ids"])
        kept, dropped[name] = corpus.drop_empty()
        parts[name] = kept if kept.n_docs else None
        if dropped[name]:
            logger.warning(
                "%s: dropped %d %s documents with no word in the vocabulary", corpus_path, dropped[name], name
            )
    if parts["train"] is None or parts["train"].n_docs == 0:
        raise ValueError(f"{corpus_path} has no training documents")
    logger.info(
        "read OCTIS corpus %s: V=%d, %s",
        root,
        len(vocab),
        ", ".join(f"{n} {p.n_docs if p is not None else 0}" for n, p in parts.items()),
    )
    return PreparedCorpus.from_splits(
        parts["train"],  # type: ignore[arg-type]
        parts["valid"],
        parts["test"],
        random_state=random_state,
        settings={
            "source": str(root),
            "format": "octis",
            "random_state": random_state,
            "unknown_tokens": n_unknown,
            "dropped_empty": dropped,
        },
    )


def _lists_to_csr(rows: Sequence[Sequence[int]], n_words: int) -> sp.csr_matrix:
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    cols = np.fromiter((c for r in rows for c in r), dtype=np.int64, count=int(lengths.sum()))
    row_ids = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
    matrix = sp.csr_matrix((np.ones(cols.size, dtype=np.int32), (row_ids, cols)), shape=(len(rows), n_words))
    matrix.sum_duplicates()
    return matrix
