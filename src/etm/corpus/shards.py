"""Corpora larger than memory: a streaming two-pass ``prepare`` and memory-mapped CSR shards.

``etm prepare --shard-size N`` reads its input twice, one document at a time.
The first pass counts document and term frequencies of the training documents
(memory grows with the number of distinct tokens, not documents; see
``prune_at``) and decides every document's split. The second pass counts each
document over the resulting vocabulary and appends it to a shard: training
documents go to a shard drawn at random, so every shard is a sample of the
whole input even when the input is sorted (by date, by label...).

A shard is three flat binary files, the CSR ``indptr`` (int64), ``indices``
(int32) and ``counts`` (int32) arrays, read back with :func:`numpy.memmap`:
training touches only the pages of the rows it batches, so its peak memory
does not depend on the size of the corpus. ``meta.json`` records each
shard's shape so truncated files are caught on load.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from etm._io import atomic_write_text, read_text_checked
from etm._textio import DecodeTally
from etm.corpus.memory import (
    CORPUS_FORMAT_VERSION,
    PARTS,
    Corpus,
    CorpusSource,
    PreparedCorpus,
    read_corpus_meta,
    read_corpus_vocabulary,
    register_layout_loader,
    split_halves,
)
from etm.preprocessing import Preprocessor

logger = logging.getLogger("etm.shards")  # the name logs print and users filter on (kept from before the move)

__all__ = [
    "CsrShard", "ShardedCorpus", "open_corpus", "is_corpus_dir", "prepare_sharded", "write_shards",
    "is_sharded_corpus", "vocabulary_from_counts", "prepare",
]

LAYOUT = "sharded"
_SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
_FILES = (("indptr", np.int64), ("indices", np.int32), ("counts", np.int32))


def is_sharded_corpus(directory: str | os.PathLike[str]) -> bool:
    """True when ``directory`` holds a corpus written by :func:`prepare_sharded`."""
    meta = Path(directory) / "meta.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(read_text_checked(meta)).get("layout") == LAYOUT
    except (ValueError, UnicodeDecodeError):
        return False


# --------------------------------------------------------------------------- #
# One shard
# --------------------------------------------------------------------------- #
class CsrShard:
    """A memory-mapped CSR matrix of shape (documents, V), with optional labels and ids."""

    def __init__(self, root: Path, name: str, n_docs: int, nnz: int, n_words: int, n_tokens: int | None) -> None:
        self.root, self.name = root, name
        self.n_docs, self.nnz, self.n_words = int(n_docs), int(nnz), int(n_words)
        self._n_tokens = None if n_tokens is None else int(n_tokens)
        for kind, dtype in _FILES:
            path = self._path(kind)
            expected = (self.n_docs + 1 if kind == "indptr" else self.nnz) * np.dtype(dtype).itemsize
            if not path.is_file():
                raise FileNotFoundError(f"{path} is missing from the sharded corpus")
            if path.stat().st_size != expected:
                raise ValueError(
                    f"{path} has {path.stat().st_size} bytes but meta.json implies {expected}: the file is "
                    "truncated or from another corpus; prepare the corpus again"
                )

    @property
    def n_tokens(self) -> int:
        """Total count of the shard; summed from the counts file (once) for corpora written before it was recorded."""
        if self._n_tokens is None:
            self._n_tokens = int(self._array("counts", np.int32, self.nnz).sum(dtype=np.int64))
        return self._n_tokens

    def _path(self, kind: str) -> Path:
        return self.root / "shards" / f"{self.name}.{kind}"

    def _array(self, kind: str, dtype: Any, length: int) -> np.ndarray:
        if length == 0:
            return np.zeros(0, dtype=dtype)
        return np.memmap(self._path(kind), dtype=dtype, mode="r", shape=(length,))

    def matrix(self) -> sp.csr_matrix:
        """The whole shard as a CSR matrix over the memory map (nothing is read until used)."""
        indptr = np.asarray(self._array("indptr", np.int64, self.n_docs + 1))
        return sp.csr_matrix(
            (self._array("counts", np.int32, self.nnz), self._array("indices", np.int32, self.nnz), indptr),
            shape=(self.n_docs, self.n_words),
            copy=False,
        )

    def rows(self, index: np.ndarray) -> sp.csr_matrix:
        """A copy of the given rows, as float32 (what batches need)."""
        indptr = np.asarray(self._array("indptr", np.int64, self.n_docs + 1))
        indices = self._array("indices", np.int32, self.nnz)
        counts = self._array("counts", np.int32, self.nnz)
        starts, stops = indptr[index], indptr[np.asarray(index) + 1]
        lengths = stops - starts
        new_indptr = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lengths, out=new_indptr[1:])
        take = np.repeat(starts - new_indptr[:-1], lengths) + np.arange(new_indptr[-1], dtype=np.int64)
        return sp.csr_matrix(
            (counts[take].astype(np.float32), indices[take], new_indptr), shape=(len(index), self.n_words)
        )

    def _strings(self, kind: str) -> list[str] | None:
        path = self.root / "shards" / f"{self.name}.{kind}.jsonl"
        if not path.is_file():
            return None
        return [json.loads(line) for line in read_text_checked(path).splitlines()]

    def labels(self) -> list[str] | None:
        return self._strings("labels")

    def doc_ids(self) -> list[str] | None:
        return self._strings("ids")

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "documents": self.n_docs, "nnz": self.nnz, "tokens": self.n_tokens}


class _ShardWriter:
    """Appends CSR rows to one shard's files; memory holds one chunk at a time."""

    def __init__(self, root: Path, name: str, n_words: int, *, labels: bool, ids: bool) -> None:
        self.root, self.name, self.n_words = root, name, n_words
        shard_dir = root / "shards"
        self.files = {kind: open(shard_dir / f"{name}.{kind}", "wb") for kind, _ in _FILES}
        self.text_files = {
            kind: open(shard_dir / f"{name}.{kind}.jsonl", "w", encoding="utf-8")
            for kind, wanted in (("labels", labels), ("ids", ids)) if wanted
        }
        self.n_docs = 0
        self.nnz = 0
        self.n_tokens = 0  # recorded in meta.json, so summaries never re-read the counts
        self.files["indptr"].write(np.zeros(1, dtype=np.int64).tobytes())

    def append(self, counts: sp.csr_matrix, labels: list[str] | None, ids: list[str] | None) -> None:
        if counts.shape[0] == 0:
            return
        self.files["indptr"].write((counts.indptr[1:].astype(np.int64) + self.nnz).tobytes())
        self.files["indices"].write(counts.indices.astype(np.int32).tobytes())
        self.files["counts"].write(counts.data.astype(np.int32).tobytes())
        for kind, values in (("labels", labels), ("ids", ids)):
            if kind in self.text_files and values is not None:
                self.text_files[kind].write("".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values))
        self.n_docs += counts.shape[0]
        self.nnz += int(counts.indptr[-1])
        self.n_tokens += int(counts.data.sum(dtype=np.int64))

    def close(self) -> dict[str, Any]:
        for fh in [*self.files.values(), *self.text_files.values()]:
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        return {"name": self.name, "documents": self.n_docs, "nnz": self.nnz, "tokens": self.n_tokens}


# --------------------------------------------------------------------------- #
# The sharded corpus
# --------------------------------------------------------------------------- #
@dataclass
class ShardedCorpus:
    """A prepared corpus on disk: train / valid / test shards and completion halves.

    Use it where a :class:`~etm.corpus.PreparedCorpus` is accepted for
    training (:func:`etm.training.train`, :class:`etm.TopicModel`,
    ``etm train``): batches are read from the memory-mapped shards.
    :meth:`to_prepared` loads everything into memory for the tools that need
    it (plots, labelling).
    """

    root: Path
    vocabulary: list[str]
    parts: dict[str, list[CsrShard]]
    halves: dict[str, list[tuple[CsrShard, CsrShard]]]
    settings: dict[str, Any] = field(default_factory=dict)
    n_unsplittable: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ShardedCorpus:
        """Open a directory written by :func:`prepare_sharded` (nothing is read but the metadata)."""
        root = Path(directory)
        meta = read_corpus_meta(root)
        if meta.get("layout") != LAYOUT:
            raise ValueError(f"{root / 'meta.json'}: not a sharded etm corpus (written without --shard-size)")
        vocab = read_corpus_vocabulary(root, meta)
        v = len(vocab)

        def open_all(infos: list[dict[str, Any]]) -> list[CsrShard]:
            try:  # "tokens" came later: corpora written before it are summed on first use
                return [CsrShard(root, i["name"], i["documents"], i["nnz"], v, i.get("tokens")) for i in infos]
            except KeyError as missing:
                raise ValueError(f"{root / 'meta.json'}: a shard entry has no {missing.args[0]!r} field; the file "
                                 "is damaged or not from etm prepare: prepare the corpus again") from None

        parts = {name: open_all(infos) for name, infos in meta["parts"].items() if infos}
        if not parts.get("train"):
            raise ValueError(f"{root / 'meta.json'}: the corpus has no training shards")
        halves = {name: list(zip(open_all(pair[0]), open_all(pair[1]))) for name, pair in meta["halves"].items()}
        return cls(root, vocab, parts, halves, meta.get("settings", {}), meta.get("n_unsplittable", {}))

    def _shards(self, part: str) -> list[CsrShard]:
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        return self.parts.get(part, [])

    def n_docs(self, part: str = "train") -> int:
        """Documents in ``part`` (0 when the corpus has no such part)."""
        return sum(s.n_docs for s in self._shards(part))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"vocabulary_size": len(self.vocabulary), "layout": LAYOUT}
        for name, shards in self.parts.items():
            out[f"{name}_documents"] = sum(s.n_docs for s in shards)
            out[f"{name}_tokens"] = sum(s.n_tokens for s in shards)
            out[f"{name}_shards"] = len(shards)
        for name, pairs in self.halves.items():
            out[f"{name}_completion_documents"] = sum(a.n_docs for a, _ in pairs)
        out["left_out_of_completion"] = dict(self.n_unsplittable)
        return out

    def word_totals(self, part: str = "train") -> np.ndarray:
        """Occurrences of each word in a part, shape (V,), streamed shard by shard."""
        totals = np.zeros(len(self.vocabulary), dtype=np.float64)
        for shard in self._shards(part):
            step = 1 << 24
            indices = shard._array("indices", np.int32, shard.nnz)
            counts = shard._array("counts", np.int32, shard.nnz)
            for i in range(0, shard.nnz, step):
                totals += np.bincount(indices[i : i + step], weights=counts[i : i + step], minlength=totals.size)
        return totals

    def completion_chunks(self, part: str = "valid") -> list[tuple[sp.csr_matrix, sp.csr_matrix]]:
        """Document-completion halves, one (first, second) pair per non-empty shard, over the memory maps."""
        self._shards(part)
        return [(a.matrix(), b.matrix()) for a, b in self.halves.get(part, []) if a.n_docs > 0]

    def batches(self, generator: Any, seed: int) -> Any:
        """An :class:`etm.corpus.batching.ShardedBatches` over the training shards (shuffled from ``seed``)."""
        from etm.corpus.batching import ShardedBatches

        return ShardedBatches(self.parts["train"], seed)

    def document_chunks(
        self, chunk_size: int, parts: Sequence[str] = PARTS
    ) -> Iterator[tuple[Corpus, list[str] | None, str]]:
        """Every document of ``parts``, shard by shard from the memory maps, ``chunk_size`` at a time."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        for name in parts:
            for shard in self._shards(name):
                matrix, ids = shard.matrix(), shard.doc_ids()
                for start in range(0, shard.n_docs, chunk_size):
                    yield (Corpus(matrix[start : start + chunk_size], self.vocabulary),
                           None if ids is None else ids[start : start + chunk_size], name)

    def to_prepared(self) -> PreparedCorpus:
        """Everything in memory, as a :class:`PreparedCorpus` (needs memory for the whole corpus)."""

        def load_part(shards: list[CsrShard]) -> Corpus | None:
            if not shards:
                return None
            counts = sp.vstack([s.matrix() for s in shards], format="csr")
            labels = [s.labels() for s in shards]
            ids = [s.doc_ids() for s in shards]
            return Corpus(
                counts, self.vocabulary,
                labels=None if any(x is None for x in labels) else [v for x in labels for v in x],  # type: ignore[union-attr]
                doc_ids=None if any(x is None for x in ids) else [v for x in ids for v in x],  # type: ignore[union-attr]
            )

        def load_halves(name: str) -> tuple[sp.csr_matrix, sp.csr_matrix] | None:
            pairs = self.halves.get(name)
            if not pairs:
                return None
            return (sp.vstack([a.matrix() for a, _ in pairs], format="csr"),
                    sp.vstack([b.matrix() for _, b in pairs], format="csr"))

        train = load_part(self.parts["train"])
        assert train is not None
        return PreparedCorpus(
            train=train,
            valid=load_part(self.parts.get("valid", [])),
            test=load_part(self.parts.get("test", [])),
            valid_halves=load_halves("valid"),
            test_halves=load_halves("test"),
            settings=dict(self.settings),
            n_unsplittable=dict(self.n_unsplittable),
        )


def is_corpus_dir(directory: str | os.PathLike[str], fmt: str = "auto") -> bool:
    """True when :func:`open_corpus` reads ``directory`` as a prepared corpus rather than raw documents.

    ``fmt`` "authors" or "octis" says so outright; "auto" looks for the file
    each layout has (``meta.json``, ``vocab.pkl``, ``corpus.tsv``).
    """
    root = Path(directory)
    return fmt in ("authors", "octis") or (
        fmt == "auto" and root.is_dir()
        and any((root / name).is_file() for name in ("vocab.pkl", "corpus.tsv", "meta.json"))
    )


def open_corpus(directory: str | os.PathLike[str], fmt: str = "auto") -> CorpusSource:
    """Open any prepared corpus directory etm reads; a sharded one stays on disk.

    Every layout goes through here: a directory written by ``etm prepare``
    (a :class:`~etm.corpus.PreparedCorpus` in memory, or a
    :class:`ShardedCorpus` of memory-mapped shards when written with
    ``--shard-size``), the ETM authors' ``vocab.pkl`` + ``.mat`` files and an
    OCTIS dataset directory (both read into memory). ``fmt`` is "auto"
    (decided by the files present), "etm", "authors" or "octis". Every
    result implements :class:`~etm.corpus.CorpusSource`.
    """
    from etm.corpus.formats import read_authors_format, read_octis

    root = Path(directory)
    if fmt == "authors" or (fmt == "auto" and (root / "vocab.pkl").is_file()):
        return read_authors_format(root)
    if fmt == "octis" or (fmt == "auto" and (root / "corpus.tsv").is_file()):
        return read_octis(root)
    if read_corpus_meta(root).get("layout") == LAYOUT:
        return ShardedCorpus.load(root)
    return PreparedCorpus.load(root)


def _load_into_memory(root: Path) -> PreparedCorpus:
    """:meth:`PreparedCorpus.load` of a sharded directory: every shard read into memory."""
    logger.info("%s is a sharded corpus: loading all its shards into memory", root)
    return ShardedCorpus.load(root).to_prepared()


register_layout_loader(LAYOUT, _load_into_memory)


# --------------------------------------------------------------------------- #
# Streaming preparation
# --------------------------------------------------------------------------- #
def vocabulary_from_counts(
    doc_freq: dict[str, int], term_freq: dict[str, int], n_docs: int, preprocessor: Preprocessor
) -> list[str]:
    """Apply ``min_df``, ``max_df`` and ``max_features`` as scikit-learn's ``CountVectorizer`` does.

    Kept words are sorted alphabetically, as the vectorizer sorts them, so the
    streaming and in-memory preparations of one input agree. The same as
    :meth:`Preprocessor.prune_vocabulary <etm.preprocessing.Preprocessor.prune_vocabulary>`.
    """
    return preprocessor.prune_vocabulary(doc_freq, n_docs, term_freq)


def _chunks(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _start(target: Path) -> Path:
    """A fresh temporary directory beside ``target`` (with ``shards/``) to build a corpus in."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "shards").mkdir(parents=True)
    return tmp


def _finish(tmp: Path, target: Path, vocabulary: list[str], meta: dict[str, Any]) -> None:
    """Write the vocabulary and `meta.json` (format, version, layout and size filled in) last, then move into place."""
    meta = {"format": "etm-corpus", "format_version": CORPUS_FORMAT_VERSION, "layout": LAYOUT,
            "vocabulary_size": len(vocabulary), **meta}
    atomic_write_text(tmp / "vocab.txt", "\n".join(vocabulary) + "\n")
    atomic_write_text(tmp / "meta.json", json.dumps(meta, indent=1, ensure_ascii=False))
    _replace_dir(tmp, target)


def _abandon(tmp: Path, opened: list[_ShardWriter]) -> None:
    """After an error or Ctrl-C: close every shard file and remove the half-built corpus."""
    for w in opened:
        for fh in [*w.files.values(), *w.text_files.values()]:
            fh.close()
    shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move a finished corpus into place; an older corpus there is replaced only at the very end."""
    if target.exists():
        if not target.is_dir():
            raise ValueError(f"{target} exists and is not a directory")
        if any(target.iterdir()) and not (target / "meta.json").is_file():
            raise ValueError(f"{target} is a non-empty directory that is not an etm corpus; choose another output")
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


@dataclass
class _Counted:
    """What the first pass learns: every document's part (a code per document) and the vocabulary."""

    codes: bytes
    n_per_split: dict[str, int]
    carved: dict[str, int]
    given_split: bool
    has_labels: bool
    prunes: int
    vocabulary: list[str]


def _count_pass(
    source: str | os.PathLike[str], opts: dict[str, Any], pre: Preprocessor, undecodable: DecodeTally, *,
    valid_size: float, test_size: float, random_state: int, chunk_size: int, prune_at: int, progress: bool,
) -> _Counted:
    """Pass 1: each document's part, and the frequencies of the training documents' tokens -> the vocabulary."""
    from tqdm.auto import tqdm

    from etm.corpus.readers import draw_split, iter_documents

    analyzer = pre.analyzer()
    split_rng = np.random.default_rng([random_state, 0])
    codes = bytearray()
    df: Counter[str] = Counter()
    tf: Counter[str] = Counter()
    df_carved: dict[int, Counter[str]] = {1: Counter(), 2: Counter()}
    tf_carved: dict[int, Counter[str]] = {1: Counter(), 2: Counter()}
    given_split: bool | None = None
    has_labels = False
    seen = {0: 0, 1: 0, 2: 0}
    prunes = 0
    bar = tqdm(desc="prepare: counting", unit="doc", disable=not progress)
    for chunk in _chunks(iter_documents(source, **opts, tally=undecodable), chunk_size):
        draws = split_rng.random(len(chunk))
        for record, u in zip(chunk, draws):
            if given_split is None:
                given_split = record.split is not None
                has_labels = record.label is not None
            if record.split is None:
                code, carve = draw_split(u, valid_size, test_size), 0
            else:
                code = _SPLIT_CODES[record.split]
                carve = draw_split(u, valid_size, test_size) if code == 0 else 0
            codes.append(code if not carve else 8 + carve)  # 8 + k: a training document that may be carved into k
            seen[code] += 1
            if code != 0:
                continue
            tokens = analyzer(record.text)
            target_df, target_tf = (df, tf) if not carve else (df_carved[carve], tf_carved[carve])
            target_df.update(set(tokens))
            target_tf.update(tokens)
        if len(df) > prune_at:
            prunes += 1
            for word in [w for w, c in df.items() if c <= 1]:
                del df[word]
                tf.pop(word, None)
        bar.update(len(chunk))
    bar.close()
    undecodable.warn(source)
    if not codes:
        raise ValueError(f"no documents in {source}")
    final, carved = _settle_parts(codes, bool(given_split), seen, valid_size, test_size, source,
                                  df, tf, df_carved, tf_carved)
    n_per_split = {name: final.count(code) for name, code in _SPLIT_CODES.items()}
    if n_per_split["train"] == 0:
        raise ValueError(f"no training documents among the {len(final)} read from {source}")
    vocab = pre.prune_vocabulary(df, n_per_split["train"], tf)
    return _Counted(final, n_per_split, carved, bool(given_split), has_labels, prunes, vocab)


def _settle_parts(
    codes: bytearray, given_split: bool, seen: dict[int, int], valid_size: float, test_size: float,
    source: Any, df: Counter[str], tf: Counter[str],
    df_carved: dict[int, Counter[str]], tf_carved: dict[int, Counter[str]],
) -> tuple[bytes, dict[str, int]]:
    """Final codes (0 train, 1 valid, 2 test): candidates 8 + k go to part k when it is drawn from train.

    Candidates that stay in train have their frequencies added to ``df`` and ``tf``.
    """
    from etm.corpus.readers import drawn_from_train

    carved: dict[str, int] = {}
    code_map = {0: 0, 1: 1, 2: 2}
    for k, name in ((1, "valid"), (2, "test")):
        n_candidates = sum(1 for c in codes if c == 8 + k)
        if given_split and drawn_from_train(seen[k], valid_size if k == 1 else test_size):
            code_map[8 + k] = k
            carved[name] = n_candidates
            logger.info("no %s documents in %s; drew %d of the training documents", name, source, n_candidates)
        else:
            code_map[8 + k] = 0
            df.update(df_carved[k])
            tf.update(tf_carved[k])
    return bytes(code_map[c] for c in codes), carved


class _ShardSink:
    """The parts of a sharded corpus being written.

    Training rows go to a training shard drawn at random; valid and test rows
    are appended to their current shard, and their completion halves to its
    pair of half shards.
    """

    def __init__(self, tmp: Path, n_words: int, n_train: int, *, shard_size: int, random_state: int,
                 labels: bool, ids: bool) -> None:
        self.tmp, self.n_words, self.shard_size = tmp, n_words, shard_size
        self.labels, self.ids = labels, ids
        self.shard_rng = np.random.default_rng([random_state, 1])
        self.halves_rng = np.random.default_rng([random_state, 2])
        self.opened: list[_ShardWriter] = []
        self.n_train_shards = max(1, math.ceil(n_train / shard_size))
        self.writers: dict[str, list[_ShardWriter]] = {"train": [], "valid": [], "test": []}
        self.half_writers: dict[str, list[tuple[_ShardWriter, _ShardWriter]]] = {"valid": [], "test": []}
        self.unsplittable = {"valid": 0, "test": 0}
        self.writers["train"] = [self._new(f"train-{i:05d}") for i in range(self.n_train_shards)]

    def _new(self, name: str, *, meta: bool = True) -> _ShardWriter:
        w = _ShardWriter(self.tmp, name, self.n_words, labels=meta and self.labels, ids=meta and self.ids)
        self.opened.append(w)
        return w

    def _writer_for(self, part: str) -> _ShardWriter:
        ws = self.writers[part]
        if not ws or ws[-1].n_docs >= self.shard_size:
            ws.append(self._new(f"{part}-{len(ws):05d}"))
            self.half_writers[part].append(
                (self._new(f"{part}_h1-{len(ws) - 1:05d}", meta=False),
                 self._new(f"{part}_h2-{len(ws) - 1:05d}", meta=False)))
        return ws[-1]

    def add(self, part: str, counts: sp.csr_matrix, labels: list[Any] | None, ids: list[Any] | None) -> None:
        """Append rows (none empty) to ``part``."""
        if part == "train":
            assignment = self.shard_rng.integers(self.n_train_shards, size=counts.shape[0])
            for s in np.unique(assignment):
                sel = np.flatnonzero(assignment == s)
                self.writers["train"][s].append(counts[sel], _pick(labels, sel), _pick(ids, sel))
            return
        self._writer_for(part).append(counts, labels, ids)
        first, second, kept = split_halves(counts, self.halves_rng)
        self.unsplittable[part] += int(counts.shape[0] - kept.size)
        h1, h2 = self.half_writers[part][-1]
        h1.append(first, None, None)
        h2.append(second, None, None)

    def close(self) -> dict[str, Any]:
        """Close every file; the ``parts``, ``halves`` and ``n_unsplittable`` of ``meta.json``.

        Empty shards (tiny corpora) are left out of the listing and their files removed.
        """
        infos = {part: [w.close() for w in ws] for part, ws in self.writers.items()}
        half_infos = {part: [[a.close() for a, _ in pairs], [b.close() for _, b in pairs]]
                      for part, pairs in self.half_writers.items() if pairs}
        for part in list(infos):
            for info in [i for i in infos[part] if i["documents"] == 0]:
                for kind, _ in _FILES:
                    (self.tmp / "shards" / f"{info['name']}.{kind}").unlink()
                for kind in ("labels", "ids"):
                    (self.tmp / "shards" / f"{info['name']}.{kind}.jsonl").unlink(missing_ok=True)
            infos[part] = [i for i in infos[part] if i["documents"] > 0]
        return {
            "parts": infos,
            "halves": half_infos,
            "n_unsplittable": {k: v for k, v in self.unsplittable.items() if infos.get(k)},
        }


def _pick(values: list[Any] | None, rows: np.ndarray) -> list[Any] | None:
    return None if values is None else [values[i] for i in rows]


def _write_pass(
    source: str | os.PathLike[str], opts: dict[str, Any], pre: Preprocessor, counted: _Counted, sink: _ShardSink,
    *, chunk_size: int, progress: bool,
) -> tuple[dict[str, int], dict[str, int]]:
    """Pass 2: count each document over the vocabulary and add it to its part; (dropped empty, unknown tokens)."""
    from tqdm.auto import tqdm

    from etm.corpus.readers import SPLITS, iter_documents

    dropped = {"train": 0, "valid": 0, "test": 0}
    unknown = {"train": 0, "valid": 0, "test": 0}
    final = counted.codes
    bar = tqdm(total=len(final), desc="prepare: writing shards", unit="doc", disable=not progress)
    position = 0
    # the first pass counted (and warns about) undecodable bytes; this one only reads them again
    for chunk in _chunks(iter_documents(source, **opts, tally=DecodeTally()), chunk_size):
        chunk_codes = np.frombuffer(final, dtype=np.uint8, count=len(chunk), offset=position)
        position += len(chunk)
        counts, n_tokens = pre.transform_with_lengths([r.text for r in chunk])
        lengths = np.asarray(counts.sum(axis=1, dtype=np.int64)).ravel()
        labels = [r.label for r in chunk]
        ids = [r.doc_id for r in chunk]
        for code, part in enumerate(SPLITS):
            rows = np.flatnonzero(chunk_codes == code)
            if rows.size == 0:
                continue
            unknown[part] += int(n_tokens[rows].sum() - lengths[rows].sum())
            empty = lengths[rows] == 0
            dropped[part] += int(empty.sum())
            rows = rows[~empty]
            if rows.size:
                sink.add(part, counts[rows], _pick(labels, rows), _pick(ids, rows))
        bar.update(len(chunk))
    bar.close()
    if position != len(final):
        raise ValueError(f"{source} changed between the two passes ({len(final)} then {position} documents)")
    return dropped, unknown


def prepare_sharded(
    source: str | os.PathLike[str],
    preprocessor: Preprocessor,
    output: str | os.PathLike[str],
    *,
    reader_options: dict[str, Any] | None = None,
    shard_size: int = 100_000,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    random_state: int = 0,
    chunk_size: int = 2000,
    prune_at: int = 5_000_000,
    progress: bool = False,
) -> tuple[ShardedCorpus, dict[str, Any]]:
    """Prepare ``source`` into a sharded corpus directory without holding it in memory.

    Parameters
    ----------
    source : path
        Any input of :func:`etm.readers.iter_documents` (read twice).
    preprocessor : Preprocessor
        Its settings (tokens, stop words, ``min_df``, ``max_df``,
        ``max_features``) are applied as :func:`etm.readers.prepare_corpus`
        applies them; it is fitted here to the resulting vocabulary.
    output : path
        Directory to write; built beside it under a temporary name and
        renamed when complete.
    reader_options : dict, optional
        ``format``, ``encoding``, ``encoding_errors``, ``text_field``,
        ``label_field``, ``split_field``, ``id_field`` for the reader.
    shard_size : int
        Target documents per training shard (the last ones may differ).
    valid_size, test_size : float
        Without a split field, each document is drawn into valid / test with
        these probabilities (so sizes are approximate). With one, a missing
        valid or test part is drawn from the training documents likewise.
    random_state : int
        Seeds splits, shard assignment and completion halves.
    chunk_size : int
        Documents tokenised together (bounds the memory of the second pass).
    prune_at : int
        When the first pass has counted this many distinct tokens, tokens seen
        in a single document so far are forgotten (as gensim's Dictionary
        does), bounding its memory; the report says how often that happened.
    progress : bool
        tqdm progress bars on both passes.
    """
    from etm.corpus.readers import prepare_report, prepare_settings

    if shard_size < 1:
        raise ValueError(f"shard_size must be a positive number of documents, got {shard_size}")
    if not (0 <= valid_size < 1 and 0 <= test_size < 1 and valid_size + test_size < 1):
        raise ValueError(f"valid_size and test_size must be fractions summing below 1, got {valid_size}, {test_size}")
    opts = dict(reader_options or {})
    pre = preprocessor
    undecodable = DecodeTally(opts.get("encoding_errors", "strict"))
    counted = _count_pass(source, opts, pre, undecodable, valid_size=valid_size, test_size=test_size,
                          random_state=random_state, chunk_size=chunk_size, prune_at=prune_at, progress=progress)
    vocab = counted.vocabulary
    pre.fit_vocabulary(vocab)
    logger.info("vocabulary: %d words from %d training documents", len(vocab), counted.n_per_split["train"])

    target = Path(output)
    tmp = _start(target)
    sink: _ShardSink | None = None
    try:
        sink = _ShardSink(tmp, len(vocab), counted.n_per_split["train"], shard_size=shard_size,
                          random_state=random_state, labels=counted.has_labels, ids=True)
        dropped, unknown = _write_pass(source, opts, pre, counted, sink, chunk_size=chunk_size, progress=progress)
        meta = sink.close()
        if not meta["parts"]["train"]:
            raise ValueError("no training documents remain after preprocessing")
        settings = prepare_settings(pre, str(source), "given" if counted.given_split else "random", valid_size,
                                    test_size, random_state, dropped, shard_size=shard_size)
        _finish(tmp, target, vocab, {**meta, "settings": settings})
    except BaseException:
        _abandon(tmp, sink.opened if sink is not None else [])
        raise
    corpus = ShardedCorpus.load(target)
    report = prepare_report(
        len(counted.codes), settings["split_from"], counted.carved, counted.n_per_split, dropped, unknown,
        len(vocab), undecodable.bytes, corpus.summary(), vocabulary_prunes=counted.prunes,
    )
    return corpus, report


def prepare(
    source: str | os.PathLike[str] | Any,
    preprocessor: Preprocessor,
    *,
    output: str | os.PathLike[str] | None = None,
    shard_size: int | None = None,
    reader_options: dict[str, Any] | None = None,
    valid_size: float = 0.1,
    test_size: float = 0.1,
    random_state: int = 0,
    **streaming: Any,
) -> tuple[PreparedCorpus | ShardedCorpus, dict[str, Any]]:
    """One entry point to both prepare pipelines: in memory, or streamed into shards with ``shard_size``.

    Without ``shard_size``, ``source`` (a path, or :class:`~etm.readers.RawDocuments`)
    is read whole and prepared by :func:`etm.readers.prepare_corpus`; the
    corpus is saved to ``output`` when one is given. With ``shard_size``,
    :func:`prepare_sharded` streams ``source`` into shards under ``output``
    (required); ``streaming`` takes its other keywords (``chunk_size``,
    ``prune_at``, ``progress``). Both apply the same vocabulary, split and
    completion rules (see ``docs/architecture.md``).
    """
    from etm.corpus.readers import RawDocuments, prepare_corpus, read_documents

    if shard_size is not None:
        if output is None:
            raise ValueError("a sharded corpus is written to disk: give output= with shard_size=")
        return prepare_sharded(source, preprocessor, output, reader_options=reader_options, shard_size=shard_size,
                               valid_size=valid_size, test_size=test_size, random_state=random_state, **streaming)
    if streaming:
        raise TypeError(f"{', '.join(sorted(streaming))} only apply with shard_size= (the streaming pipeline)")
    raw = source if isinstance(source, RawDocuments) else read_documents(source, **(reader_options or {}))
    corpus, report = prepare_corpus(raw, preprocessor, valid_size=valid_size, test_size=test_size,
                                    random_state=random_state)
    if output is not None:
        corpus.save(output)
    return corpus, report


def write_shards(
    output: str | os.PathLike[str],
    vocabulary: list[str],
    train: Iterable[sp.csr_matrix],
    *,
    n_train: int,
    valid: Iterable[sp.csr_matrix] = (),
    test: Iterable[sp.csr_matrix] = (),
    shard_size: int = 100_000,
    random_state: int = 0,
    settings: dict[str, Any] | None = None,
) -> ShardedCorpus:
    """Write bags of words that arrive in pieces (CSR chunks over ``vocabulary``) as a sharded corpus.

    For counts built elsewhere and too large to hold at once. ``n_train``
    (the number of training rows to come) sets the number of training
    shards; each training row goes to a shard drawn at random. Valid and test
    rows get seeded completion halves; rows without words are dropped.
    """
    if shard_size < 1 or n_train < 1:
        raise ValueError("shard_size and n_train must be positive")
    target = Path(output)
    tmp = _start(target)
    v = len(vocabulary)
    rng = np.random.default_rng([random_state, 1])
    halves_rng = np.random.default_rng([random_state, 2])
    opened: list[_ShardWriter] = []

    def new_writer(name: str) -> _ShardWriter:
        w = _ShardWriter(tmp, name, v, labels=False, ids=False)
        opened.append(w)
        return w

    try:
        n_shards = max(1, math.ceil(n_train / shard_size))
        train_writers = [new_writer(f"train-{i:05d}") for i in range(n_shards)]
        for chunk in train:
            chunk = _nonempty(chunk, v)
            assignment = rng.integers(n_shards, size=chunk.shape[0])
            for s in np.unique(assignment):
                train_writers[s].append(chunk[assignment == s], None, None)
        parts: dict[str, list[dict[str, Any]]] = {"train": [w.close() for w in train_writers]}
        halves: dict[str, list[list[dict[str, Any]]]] = {}
        unsplittable: dict[str, int] = {}
        for name, chunks in (("valid", valid), ("test", test)):
            writers: list[tuple[_ShardWriter, _ShardWriter, _ShardWriter]] = []
            unsplittable[name] = 0
            for chunk in chunks:
                chunk = _nonempty(chunk, v)
                if not writers or writers[-1][0].n_docs >= shard_size:
                    i = len(writers)
                    writers.append((new_writer(f"{name}-{i:05d}"), new_writer(f"{name}_h1-{i:05d}"),
                                    new_writer(f"{name}_h2-{i:05d}")))
                whole, h1, h2 = writers[-1]
                whole.append(chunk, None, None)
                first, second, kept = split_halves(chunk, halves_rng)
                unsplittable[name] += int(chunk.shape[0] - kept.size)
                h1.append(first, None, None)
                h2.append(second, None, None)
            if writers:
                parts[name] = [w.close() for w, _, _ in writers]
                halves[name] = [[a.close() for _, a, _ in writers], [b.close() for _, _, b in writers]]
        parts["train"] = [p for p in parts["train"] if p["documents"] > 0]
        for w in train_writers:
            if w.n_docs == 0:
                for kind, _ in _FILES:
                    (tmp / "shards" / f"{w.name}.{kind}").unlink()
        if not parts["train"]:
            raise ValueError("no training documents with words")
        _finish(tmp, target, vocabulary, {
            "parts": parts, "halves": halves,
            "n_unsplittable": {k: n for k, n in unsplittable.items() if k in parts},
            "settings": {"shard_size": shard_size, "random_state": random_state, **(settings or {})},
        })
    except BaseException:
        _abandon(tmp, opened)
        raise
    return ShardedCorpus.load(target)


def _nonempty(chunk: sp.spmatrix, n_words: int) -> sp.csr_matrix:
    csr = sp.csr_matrix(chunk)
    if csr.shape[1] != n_words:
        raise ValueError(f"a chunk has {csr.shape[1]} columns but the vocabulary has {n_words} words")
    csr.sum_duplicates()
    return csr[np.diff(csr.indptr) > 0]
