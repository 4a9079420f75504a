"""Bag-of-words corpora: a vocabulary plus CSR counts, their splits and halves.

A :class:`Corpus` is one collection of documents over one vocabulary. A
:class:`PreparedCorpus` is what training needs: train / valid / test corpora
over the same vocabulary, plus each valid and test document split into two
halves of its token occurrences for document-completion perplexity. Counts
stay in ``scipy.sparse`` CSR form throughout; nothing here densifies a corpus.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from etm._io import atomic_write_bytes, atomic_write_text, read_text_checked

logger = logging.getLogger("etm.corpus")  # the name logs print and users filter on (kept from before the move)

__all__ = ["Corpus", "CorpusSource", "PreparedCorpus", "split_halves", "CORPUS_FORMAT_VERSION"]

#: The parts of a prepared corpus, in the order they are listed and streamed.
PARTS = ("train", "valid", "test")

CORPUS_FORMAT_VERSION = 1


def _as_str_array(values: Sequence[Any] | None, n: int, name: str) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray([str(v) for v in values], dtype=object)
    if arr.shape != (n,):
        raise ValueError(f"{name} has {len(arr)} entries but the corpus has {n} documents")
    return arr


class Corpus:
    """Documents as bags of words over a fixed vocabulary.

    Parameters
    ----------
    counts : sparse matrix of shape (D, V)
        Non-negative word counts; stored as CSR with int32 or float32 values.
    vocabulary : sequence of str of length V
        Word of each column; words must be unique.
    labels : sequence of str of length D, optional
        A label per document (e.g. the newsgroup), kept for evaluation.
    doc_ids : sequence of str of length D, optional
        An identifier per document, kept so results can be traced back.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix of shape (D, V)
    vocabulary : list of str
    labels, doc_ids : numpy object arrays of shape (D,) or None
    """

    def __init__(
        self,
        counts: sp.spmatrix | np.ndarray,
        vocabulary: Sequence[str],
        *,
        labels: Sequence[Any] | None = None,
        doc_ids: Sequence[Any] | None = None,
    ) -> None:
        if isinstance(counts, np.ndarray):
            counts = sp.csr_matrix(counts)
        if not sp.issparse(counts):
            raise TypeError(f"counts must be a scipy sparse matrix of shape (D, V), got {type(counts).__name__}")
        csr = sp.csr_matrix(counts)
        if not csr.has_canonical_format:
            csr = csr.copy()
            csr.sum_duplicates()
        if csr.dtype.kind not in "iuf":
            raise TypeError(f"counts must be numeric, got dtype {csr.dtype}")
        if csr.dtype.kind == "f":
            csr = csr.astype(np.float32)
        else:
            csr = csr.astype(np.int32)
        if csr.nnz and csr.data.min() < 0:
            raise ValueError("counts must be non-negative (they are word counts)")
        if csr.dtype.kind == "f" and csr.nnz and not np.isfinite(csr.data).all():
            raise ValueError("counts contain NaN or infinity")
        vocabulary = [str(w) for w in vocabulary]
        if len(vocabulary) != csr.shape[1]:
            raise ValueError(f"counts have {csr.shape[1]} columns but the vocabulary has {len(vocabulary)} words")
        if len(set(vocabulary)) != len(vocabulary):
            seen: set[str] = set()
            dup = next(w for w in vocabulary if w in seen or seen.add(w))  # type: ignore[func-returns-value]
            raise ValueError(f"vocabulary has duplicate word {dup!r}")
        csr.eliminate_zeros()
        self.counts = csr
        self.vocabulary = vocabulary
        self.labels = _as_str_array(labels, csr.shape[0], "labels")
        self.doc_ids = _as_str_array(doc_ids, csr.shape[0], "doc_ids")

    # -- basic facts --------------------------------------------------------
    @property
    def n_docs(self) -> int:
        """D, the number of documents."""
        return int(self.counts.shape[0])

    @property
    def n_words(self) -> int:
        """V, the vocabulary size."""
        return int(self.counts.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.counts.nnz)

    @property
    def n_tokens(self) -> int:
        return int(self.counts.sum())

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return f"Corpus(n_docs={self.n_docs}, n_words={self.n_words}, nnz={self.nnz})"

    def doc_lengths(self) -> np.ndarray:
        """Tokens per document, shape (D,)."""
        return np.asarray(self.counts.sum(axis=1)).ravel()

    def subset(self, index: np.ndarray | Sequence[int]) -> Corpus:
        """The documents at ``index`` (rows), same vocabulary."""
        index = np.asarray(index, dtype=np.int64)
        return Corpus(
            self.counts[index],
            self.vocabulary,
            labels=None if self.labels is None else self.labels[index],
            doc_ids=None if self.doc_ids is None else self.doc_ids[index],
        )

    def drop_empty(self) -> tuple[Corpus, int]:
        """Remove documents with no in-vocabulary word; returns the count dropped."""
        keep = np.flatnonzero(self.doc_lengths() > 0)
        dropped = self.n_docs - keep.size
        return (self if dropped == 0 else self.subset(keep)), dropped

    def check_vocabulary(self, vocabulary: Sequence[str], *, what: str = "model") -> None:
        """Raise ValueError when this corpus's vocabulary differs from ``vocabulary``."""
        check_same_vocabulary(self.vocabulary, vocabulary, left="corpus", right=what)

    def split(
        self,
        *,
        valid_size: float = 0.1,
        test_size: float = 0.1,
        random_state: int | None = 0,
    ) -> PreparedCorpus:
        """Seeded random train / valid / test split, with completion halves."""
        for name, value in (("valid_size", valid_size), ("test_size", test_size)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")
        if valid_size + test_size >= 1.0:
            raise ValueError(f"valid_size + test_size must be below 1, got {valid_size + test_size}")
        rng = np.random.default_rng(random_state)
        order = rng.permutation(self.n_docs)
        n_valid = int(round(valid_size * self.n_docs))
        n_test = int(round(test_size * self.n_docs))
        valid_idx = np.sort(order[:n_valid])
        test_idx = np.sort(order[n_valid : n_valid + n_test])
        train_idx = np.sort(order[n_valid + n_test :])
        if train_idx.size == 0:
            raise ValueError(f"no training documents left out of {self.n_docs}; lower valid_size/test_size")
        return PreparedCorpus.from_splits(
            self.subset(train_idx),
            self.subset(valid_idx) if n_valid else None,
            self.subset(test_idx) if n_test else None,
            random_state=random_state,
        )


def check_same_vocabulary(left_vocab: Sequence[str], right_vocab: Sequence[str], *, left: str, right: str) -> None:
    """Raise a ValueError that says how two vocabularies differ."""
    if list(left_vocab) == list(right_vocab):
        return
    if len(left_vocab) != len(right_vocab):
        raise ValueError(
            f"{left} has {len(left_vocab)} words in its vocabulary, {right} vocabulary has {len(right_vocab)} "
            f"words; map the documents through the {right}'s vocabulary (e.g. TopicModel.transform on texts)"
        )
    position = next(i for i, (a, b) in enumerate(zip(left_vocab, right_vocab)) if a != b)
    raise ValueError(
        f"{left} and {right} vocabularies differ: word {position} is {left_vocab[position]!r} in the {left} "
        f"but {right_vocab[position]!r} in the {right}"
    )


def split_halves(
    counts: sp.spmatrix, random_state: int | np.random.Generator | None = 0
) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """Split each document's token occurrences into two random halves.

    Document completion conditions on the first half and scores the second.
    Each document's tokens are shuffled and the first ``n // 2`` go to the
    first half. Documents with fewer than two tokens cannot be split.

    Parameters
    ----------
    counts : sparse matrix of shape (D, V)
    random_state : int, Generator or None

    Returns
    -------
    first, second : csr_matrix of shape (D', V), int32
        The two halves of the D' documents that have at least two tokens.
    kept : ndarray of shape (D',)
        Row of each kept document in ``counts``.
    """
    csr = sp.csr_matrix(counts).astype(np.int64)
    rng = np.random.default_rng(random_state)
    lengths = np.asarray(csr.sum(axis=1)).ravel()
    kept = np.flatnonzero(lengths >= 2)
    csr = csr[kept]
    lengths = lengths[kept]
    n_rows, n_cols = csr.shape
    row_of_entry = np.repeat(np.arange(n_rows), np.diff(csr.indptr))
    tok_rows = np.repeat(row_of_entry, csr.data)
    tok_words = np.repeat(csr.indices, csr.data)
    order = np.lexsort((rng.random(tok_rows.size), tok_rows))
    tok_rows, tok_words = tok_rows[order], tok_words[order]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    position = np.arange(tok_rows.size) - starts[tok_rows]
    in_first = position < (lengths // 2)[tok_rows]

    def build(mask: np.ndarray) -> sp.csr_matrix:
        ones = np.ones(int(mask.sum()), dtype=np.int32)
        m = sp.csr_matrix((ones, (tok_rows[mask], tok_words[mask])), shape=(n_rows, n_cols))
        m.sum_duplicates()
        return m

    return build(in_first), build(~in_first), kept


@runtime_checkable
class CorpusSource(Protocol):
    """What training, evaluation and inference read from a prepared corpus, wherever it is kept.

    Implemented by :class:`PreparedCorpus` (in memory) and
    :class:`etm.shards.ShardedCorpus` (memory-mapped shards on disk); open
    either with :func:`etm.shards.open_corpus`. Parts are named "train",
    "valid" and "test"; a part the corpus lacks has no documents.
    ``isinstance(x, CorpusSource)`` checks only that the members exist.
    """

    vocabulary: list[str]
    settings: dict[str, Any]
    n_unsplittable: dict[str, int]

    def n_docs(self, part: str = "train") -> int:
        """Documents in ``part`` (0 when the corpus has no such part)."""
        ...

    def word_totals(self, part: str = "train") -> np.ndarray:
        """Occurrences of each word in ``part``, float64 of shape (V,)."""
        ...

    def batches(self, generator: Any, seed: int) -> Any:
        """The training documents' batch source (:mod:`etm.corpus.batching`), shuffled from ``generator`` / ``seed``."""
        ...

    def completion_chunks(self, part: str = "valid") -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
        """Document-completion halves of ``part`` as (first, second) pairs, possibly in pieces; [] when none."""
        ...

    def document_chunks(
        self, chunk_size: int, parts: Sequence[str] = PARTS
    ) -> Iterator[tuple[Corpus, list[str] | None, str]]:
        """Every document of ``parts``, ``chunk_size`` at a time: (Corpus, ids or None, part name) triples."""
        ...

    def summary(self) -> dict[str, Any]:
        """Sizes of every part, for logs and ``--json`` output."""
        ...

    def to_prepared(self) -> PreparedCorpus:
        """Everything in memory, as a :class:`PreparedCorpus`."""
        ...


@dataclass
class PreparedCorpus:
    """Train / valid / test corpora over one vocabulary, ready for training.

    ``valid_halves`` and ``test_halves`` are ``(first, second)`` CSR pairs of
    shape (D', V) for document completion; documents too short to split are
    left out and counted in ``n_unsplittable``.
    """

    train: Corpus
    valid: Corpus | None = None
    test: Corpus | None = None
    valid_halves: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
    test_halves: tuple[sp.csr_matrix, sp.csr_matrix] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    n_unsplittable: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_splits(
        cls,
        train: Corpus,
        valid: Corpus | None,
        test: Corpus | None,
        *,
        random_state: int | None = 0,
        settings: dict[str, Any] | None = None,
    ) -> PreparedCorpus:
        """Build from split corpora, drawing seeded completion halves."""
        rng = np.random.default_rng(random_state)
        halves: dict[str, tuple[sp.csr_matrix, sp.csr_matrix] | None] = {"valid": None, "test": None}
        skipped: dict[str, int] = {}
        for name, part in (("valid", valid), ("test", test)):
            if part is None or part.n_docs == 0:
                continue
            part.check_vocabulary(train.vocabulary, what="training corpus")
            first, second, kept = split_halves(part.counts, rng)
            halves[name] = (first, second)
            skipped[name] = part.n_docs - kept.size
            if skipped[name]:
                logger.info(
                    "%d %s documents have fewer than 2 tokens and are left out of document completion",
                    skipped[name],
                    name,
                )
        return cls(
            train=train,
            valid=valid,
            test=test,
            valid_halves=halves["valid"],
            test_halves=halves["test"],
            settings=dict(settings or {}),
            n_unsplittable=skipped,
        )

    @property
    def vocabulary(self) -> list[str]:
        return self.train.vocabulary

    def parts(self) -> Iterator[tuple[str, Corpus]]:
        for name in PARTS:
            part = getattr(self, name)
            if part is not None:
                yield name, part

    # -- the CorpusSource interface ------------------------------------------
    def _part(self, part: str) -> Corpus | None:
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        return getattr(self, part)

    def n_docs(self, part: str = "train") -> int:
        """Documents in ``part`` (0 when the corpus has no such part); ``self.train.n_docs`` for training."""
        found = self._part(part)
        return 0 if found is None else found.n_docs

    def word_totals(self, part: str = "train") -> np.ndarray:
        """Occurrences of each word in ``part``, float64 of shape (V,)."""
        found = self._part(part)
        if found is None:
            return np.zeros(len(self.vocabulary), dtype=np.float64)
        return np.asarray(found.counts.sum(axis=0, dtype=np.float64)).ravel()

    def batches(self, generator: Any, seed: int) -> Any:
        """An :class:`etm.corpus.batching.InMemoryBatches` over the training counts (``seed`` is unused here)."""
        from etm.corpus.batching import InMemoryBatches

        return InMemoryBatches(self.train.counts, generator)

    def completion_chunks(self, part: str = "valid") -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
        """The (first, second) halves of ``part`` as one pair, or [] when it has none."""
        self._part(part)
        halves = getattr(self, f"{part}_halves", None)
        return [] if halves is None or halves[0].shape[0] == 0 else [halves]

    def document_chunks(
        self, chunk_size: int, parts: Sequence[str] = PARTS
    ) -> Iterator[tuple[Corpus, list[str] | None, str]]:
        """Every document of ``parts``, ``chunk_size`` at a time: (Corpus, ids or None, part name) triples."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        for name in parts:
            found = self._part(name)
            if found is None:
                continue
            for start in range(0, found.n_docs, chunk_size):
                chunk = found.subset(np.arange(start, min(start + chunk_size, found.n_docs)))
                yield chunk, None if chunk.doc_ids is None else chunk.doc_ids.tolist(), name

    def to_prepared(self) -> PreparedCorpus:
        """This corpus (already in memory)."""
        return self

    def summary(self) -> dict[str, Any]:
        """Sizes of every part, for logs and ``--json`` output."""
        out: dict[str, Any] = {"vocabulary_size": len(self.vocabulary)}
        for name, part in self.parts():
            out[f"{name}_documents"] = part.n_docs
            out[f"{name}_tokens"] = part.n_tokens
        for name in ("valid", "test"):
            halves = getattr(self, f"{name}_halves")
            if halves is not None:
                out[f"{name}_completion_documents"] = int(halves[0].shape[0])
        out["left_out_of_completion"] = dict(self.n_unsplittable)
        return out

    # -- persistence ---------------------------------------------------------
    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``vocab.txt``, one ``.npz`` per matrix and ``meta.json``.

        Every file is written to a temporary name and renamed, so an
        interrupted save never leaves a half-written corpus behind.
        """
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for w in self.vocabulary:
            if "\n" in w or "\r" in w:
                raise ValueError(f"vocabulary word {w!r} contains a line break and cannot be saved to vocab.txt")
        atomic_write_text(out / "vocab.txt", "\n".join(self.vocabulary) + "\n")
        parts: dict[str, Any] = {}
        for name, part in self.parts():
            _save_npz(out / f"{name}.npz", part.counts)
            parts[name] = {
                "documents": part.n_docs,
                "labels": None if part.labels is None else part.labels.tolist(),
                "doc_ids": None if part.doc_ids is None else part.doc_ids.tolist(),
            }
        for name in ("valid", "test"):
            halves = getattr(self, f"{name}_halves")
            if halves is not None:
                _save_npz(out / f"{name}_h1.npz", halves[0])
                _save_npz(out / f"{name}_h2.npz", halves[1])
        meta = {
            "format": "etm-corpus",
            "format_version": CORPUS_FORMAT_VERSION,
            "vocabulary_size": len(self.vocabulary),
            "parts": parts,
            "n_unsplittable": self.n_unsplittable,
            "settings": self.settings,
        }
        atomic_write_text(out / "meta.json", json.dumps(meta, indent=1, ensure_ascii=False))
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> PreparedCorpus:
        """Read a directory written by :meth:`save` into memory.

        A corpus of another layout (``layout`` in ``meta.json``) is read by
        the loader its module registered with :func:`register_layout_loader`:
        :mod:`etm.shards` loads a sharded corpus whole into memory. To keep a
        sharded corpus on disk, open it with :func:`etm.shards.open_corpus`
        (any corpus directory) or :meth:`etm.shards.ShardedCorpus.load`.
        """
        root = Path(directory)
        meta = read_corpus_meta(root)
        layout = meta.get("layout")
        if layout is not None:
            loader = _LAYOUT_LOADERS.get(layout)
            if loader is None:
                raise ValueError(
                    f"{root / 'meta.json'}: a corpus of layout {layout!r}, which PreparedCorpus.load cannot read; "
                    "open it with etm.shards.open_corpus (or etm.shards.ShardedCorpus.load for a sharded corpus)"
                )
            return loader(root)
        vocab = read_corpus_vocabulary(root, meta)
        parts: dict[str, Corpus | None] = {"train": None, "valid": None, "test": None}
        for name, info in meta["parts"].items():
            counts = _load_npz(root / f"{name}.npz", len(vocab))
            parts[name] = Corpus(counts, vocab, labels=info.get("labels"), doc_ids=info.get("doc_ids"))
        if parts["train"] is None:
            raise ValueError(f"{root / 'meta.json'}: the corpus has no training part")
        halves: dict[str, tuple[sp.csr_matrix, sp.csr_matrix] | None] = {}
        for name in ("valid", "test"):
            h1, h2 = root / f"{name}_h1.npz", root / f"{name}_h2.npz"
            halves[name] = (
                (_load_npz(h1, len(vocab)), _load_npz(h2, len(vocab))) if h1.exists() and h2.exists() else None
            )
        return cls(
            train=parts["train"],
            valid=parts["valid"],
            test=parts["test"],
            valid_halves=halves["valid"],
            test_halves=halves["test"],
            settings=meta.get("settings", {}),
            n_unsplittable=meta.get("n_unsplittable", {}),
        )

    def to_authors_format(self, directory: str | os.PathLike[str]) -> Path:
        """Export as the ETM authors' ``vocab.pkl`` + ``bow_*_{tokens,counts}.mat`` files."""
        import pickle

        import scipy.io

        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out / "vocab.pkl", pickle.dumps(list(self.vocabulary), protocol=4))
        mats: dict[str, sp.csr_matrix] = {"tr": self.train.counts}
        if self.valid is not None:
            mats["va"] = self.valid.counts
        if self.test is not None:
            mats["ts"] = self.test.counts
        if self.test_halves is not None:
            mats["ts_h1"], mats["ts_h2"] = self.test_halves
        for key, matrix in mats.items():
            tokens, counts = _to_token_lists(matrix)
            for kind, arrays in (("tokens", tokens), ("counts", counts)):
                payload = np.empty((1, len(arrays)), dtype=object)
                for i, a in enumerate(arrays):
                    payload[0, i] = a.reshape(1, -1)
                buf = io.BytesIO()
                scipy.io.savemat(buf, {kind: payload})
                atomic_write_bytes(out / f"bow_{key}_{kind}.mat", buf.getvalue())
        return out


# Readers of corpus directories in another layout than this module's ("layout" in meta.json), keyed by that
# layout. The module that owns a layout registers its reader here (etm.shards: "sharded"), so that
# PreparedCorpus.load reads every corpus directory while this module imports none of the modules above it.
_LAYOUT_LOADERS: dict[str, Callable[[Path], PreparedCorpus]] = {}


def register_layout_loader(layout: str, loader: Callable[[Path], PreparedCorpus]) -> None:
    """Make :meth:`PreparedCorpus.load` read corpus directories whose ``meta.json`` says ``layout`` with ``loader``."""
    _LAYOUT_LOADERS[layout] = loader


def read_corpus_meta(root: Path) -> dict[str, Any]:
    """``meta.json`` of a corpus directory (in memory or sharded), with its format checked."""
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: is {root} a corpus written by `etm prepare`?")
    try:
        meta = json.loads(read_text_checked(meta_path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}: not valid JSON (line {err.lineno}): {err.msg}") from None
    found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
    if found != "etm-corpus":
        raise ValueError(f"{meta_path}: not an etm corpus (format={found!r})")
    if meta.get("format_version") != CORPUS_FORMAT_VERSION:
        raise ValueError(
            f"{meta_path}: corpus format version {meta.get('format_version')!r}, "
            f"this etm reads version {CORPUS_FORMAT_VERSION}"
        )
    return meta


def read_corpus_vocabulary(root: Path, meta: dict[str, Any]) -> list[str]:
    """``vocab.txt`` of a corpus directory, checked against the size ``meta.json`` records."""
    vocab = read_text_checked(root / "vocab.txt").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    if len(vocab) != meta["vocabulary_size"]:
        raise ValueError(f"{root / 'vocab.txt'} has {len(vocab)} words but meta.json says {meta['vocabulary_size']}")
    return vocab


def _to_token_lists(matrix: sp.csr_matrix) -> tuple[list[np.ndarray], list[np.ndarray]]:
    csr = sp.csr_matrix(matrix)
    tokens = [csr.indices[a:b].astype(np.int32) for a, b in zip(csr.indptr[:-1], csr.indptr[1:])]
    counts = [csr.data[a:b].astype(np.int32) for a, b in zip(csr.indptr[:-1], csr.indptr[1:])]
    return tokens, counts


def _save_npz(path: Path, matrix: sp.csr_matrix) -> None:
    buf = io.BytesIO()
    sp.save_npz(buf, sp.csr_matrix(matrix), compressed=True)
    atomic_write_bytes(path, buf.getvalue())  # compressed, so smaller than the matrix already in memory


def _load_npz(path: Path, n_words: int) -> sp.csr_matrix:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the corpus directory")
    try:
        matrix = sp.load_npz(path)  # allow_pickle is False inside scipy
    except Exception as err:  # zipfile / numpy raise several types for a damaged file
        raise ValueError(f"{path}: not a readable sparse .npz file ({err})") from None
    if matrix.shape[1] != n_words:
        raise ValueError(f"{path} has {matrix.shape[1]} columns but vocab.txt has {n_words} words")
    return sp.csr_matrix(matrix)
