"""Word embeddings for the labelled ETM: read, align to a vocabulary, train skip-gram.

The labelled ETM (Dieng et al., 2020) keeps pre-fitted word embeddings ``rho``
fixed and learns only the topic embeddings and the encoder. This module reads
word2vec text and binary, GloVe text and fastText ``.vec`` files into gensim's
``KeyedVectors``, aligns them to a corpus vocabulary (reporting coverage and
giving words without a vector a seeded random one), and trains skip-gram
embeddings on a corpus with gensim's ``Word2Vec`` using the authors' settings.

Reading streams the file and keeps only the rows of the vocabulary, so a
multi-gigabyte file costs memory in proportion to the vocabulary; gensim's own
``load_word2vec_format`` would hold every row.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from etm._io import atomic_write_bytes
from etm.options import CORPUS_EMBEDDING_METHODS

logger = logging.getLogger(__name__)

__all__ = [
    "EMBEDDING_FORMATS",
    "AlignedEmbeddings",
    "read_embeddings",
    "align_embeddings",
    "load_embeddings",
    "train_skipgram",
    "corpus_skipgram",
    "corpus_ppmi",
    "corpus_vectors",
    "clear_corpus_skipgram_cache",
    "save_word2vec",
]

#: File formats :func:`read_embeddings` understands. ``word2vec`` and
#: ``fasttext`` are the same text layout (a ``count dim`` header line, then
#: ``word v1 ... vE`` per line); ``glove`` is that layout without the header.
EMBEDDING_FORMATS = ("auto", "word2vec", "word2vec-binary", "glove", "fasttext")

#: :func:`corpus_skipgram`'s context: a document's words come as a bag, shuffled, so the window is wide enough to
#: take in the whole of a short document.
CORPUS_SKIPGRAM_WINDOW = 10
#: :func:`corpus_skipgram` makes about this many passes over tokens in all (20 epochs on 100,000 tokens), between
#: 5 and 50 epochs, so that a small corpus gets the passes it needs and a large one stays affordable.
CORPUS_SKIPGRAM_TOKEN_PASSES = 2_000_000

#: :func:`corpus_ppmi` counts each word's co-occurrences with at most this many context words, the most frequent in
#: training, so that its (V, contexts) matrix stays bounded on a large vocabulary.
PPMI_MAX_CONTEXTS = 10_000
#: :func:`corpus_ppmi`'s context-distribution smoothing: context counts are raised to this power (Levy, Goldberg and
#: Dagan 2015), which keeps rare contexts from getting the largest PMI.
PPMI_CONTEXT_SMOOTHING = 0.75

#: The authors' ``skipgram.py`` settings.
SKIPGRAM_DEFAULTS = {"vector_size": 300, "window": 4, "negative": 10, "min_count": 2, "epochs": 50}


def _keyed_vectors(words: list[str], vectors: np.ndarray) -> Any:
    from gensim.models import KeyedVectors

    kv = KeyedVectors(vector_size=int(vectors.shape[1]), count=0, dtype=np.float32)
    if words:
        kv.add_vectors(words, vectors.astype(np.float32, copy=False))
    return kv


def _open_binary(path: Path) -> IO[bytes]:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _parse_header(line: bytes) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _detect_format(path: Path) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(".bin"):
        return "word2vec-binary"
    with _open_binary(path) as fh:
        first = fh.readline()
        if not first.strip():
            raise ValueError(f"{path} is empty or starts with a blank line: not an embedding file")
        header = _parse_header(first)
        if header is None:
            return "glove"
        sample = fh.read(header[1] * 4 + 256)
    # Text in any encoding has no control bytes besides tab and line ends; raw float32 bytes nearly always do.
    control = bytes(b for b in range(32) if b not in (9, 10, 13))
    return "word2vec-binary" if any(b in control for b in sample) else "word2vec"


class _Keeper:
    """Collects the rows of wanted words while a file streams by."""

    def __init__(self, vocabulary: Sequence[str] | None, lowercase_fallback: bool) -> None:
        self.wanted = None if vocabulary is None else set(vocabulary)
        self.lowercase_fallback = lowercase_fallback
        self.rows: dict[str, np.ndarray] = {}
        self.exact: set[str] = set()
        self.seen = 0

    def wants(self, word: str) -> str | None:
        """The vocabulary word this file word provides, or None."""
        if self.wanted is None or word in self.wanted:
            return word if word not in self.exact else None
        if self.lowercase_fallback:
            lower = word.lower()
            if lower in self.wanted and lower not in self.exact and lower not in self.rows:
                return lower
        return None

    def keep(self, file_word: str, target: str, vector: np.ndarray) -> None:
        if not np.all(np.isfinite(vector)):
            raise ValueError(f"the vector of {file_word!r} contains NaN or infinity")
        self.rows[target] = vector
        if file_word == target:
            self.exact.add(target)


def _read_text_vectors(path: Path, fmt: str, keeper: _Keeper, encoding: str) -> int:
    """Stream a word2vec/GloVe/fastText text file; returns the dimension."""
    dim: int | None = None
    expected_rows: int | None = None
    rows = 0
    with _open_binary(path) as raw:
        for lineno, raw_line in enumerate(raw, start=1):
            try:
                line = raw_line.decode(encoding)
            except UnicodeDecodeError as err:
                raise ValueError(
                    f"{path}, line {lineno}: undecodable bytes ({err.reason}); pass the file's encoding "
                    "(e.g. --encoding latin-1), or format='word2vec-binary' if it is a binary file"
                ) from None
            except LookupError:
                raise ValueError(f"unknown encoding {encoding!r} for {path}") from None
            line = line.rstrip("\r\n").rstrip(" ")
            if lineno == 1 and fmt != "glove":
                header = _parse_header(line.encode())
                if header is None:
                    raise ValueError(
                        f"{path}, line 1: expected a '<count> <dimension>' header for format {fmt!r}, got "
                        f"{line[:60]!r}; use format='glove' for files without a header"
                    )
                expected_rows, dim = header
                if dim < 1:
                    raise ValueError(f"{path}, line 1: the header declares dimension {dim}")
                continue
            if not line:
                continue
            word, sep, rest = line.partition(" ")
            if not sep:
                raise ValueError(f"{path}, line {lineno}: a word without a vector: {line[:60]!r}")
            n_values = rest.count(" ") + 1
            if dim is None:
                dim = n_values
            elif n_values != dim:
                raise ValueError(
                    f"{path}, line {lineno}: {n_values} values for {word!r}, expected {dim} "
                    f"(the dimension {'of the header' if expected_rows is not None else 'of line 1'})"
                )
            rows += 1
            keeper.seen += 1
            target = keeper.wants(word)
            if target is None:
                continue
            try:
                vector = np.array(rest.split(" "), dtype=np.float32)
            except ValueError:
                raise ValueError(f"{path}, line {lineno}: the vector of {word!r} has a non-numeric value") from None
            try:
                keeper.keep(word, target, vector)
            except ValueError as err:
                raise ValueError(f"{path}, line {lineno}: {err}") from None
    if dim is None:
        raise ValueError(f"{path} holds no vectors")
    if expected_rows is not None and rows != expected_rows:
        raise ValueError(f"{path}: the header promises {expected_rows} vectors but the file has {rows} (truncated?)")
    return dim


class _ByteReader:
    """Buffered reads for the word2vec binary layout."""

    def __init__(self, fh: IO[bytes], chunk: int = 1 << 20) -> None:
        self.fh, self.chunk, self.buf, self.pos = fh, chunk, b"", 0

    def _fill(self, need: int) -> bool:
        while len(self.buf) - self.pos < need:
            more = self.fh.read(self.chunk)
            if not more:
                return False
            self.buf = self.buf[self.pos:] + more
            self.pos = 0
        return True

    def until(self, delimiter: bytes, limit: int = 10_000) -> bytes | None:
        while True:
            idx = self.buf.find(delimiter, self.pos)
            if idx >= 0:
                out = self.buf[self.pos:idx]
                self.pos = idx + 1
                return out
            if len(self.buf) - self.pos > limit or not self._fill(len(self.buf) - self.pos + 1):
                return None

    def take(self, n: int) -> bytes | None:
        if not self._fill(n):
            return None
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out


def _read_binary_vectors(path: Path, keeper: _Keeper, encoding: str) -> int:
    with _open_binary(path) as fh:
        reader = _ByteReader(fh)
        first = reader.until(b"\n", limit=200)
        header = None if first is None else _parse_header(first)
        if header is None:
            raise ValueError(f"{path}: a word2vec binary file starts with a '<count> <dimension>' line")
        count, dim = header
        width = 4 * dim
        for record in range(1, count + 1):
            raw_word = reader.until(b" ")
            if raw_word is None:
                raise ValueError(f"{path}: vector {record} of {count} is missing or truncated (file ends early)")
            raw_word = raw_word.lstrip(b"\n")
            try:
                word = raw_word.decode(encoding)
            except UnicodeDecodeError:
                raise ValueError(f"{path}: vector {record} has an undecodable word {raw_word[:40]!r}") from None
            data = reader.take(width)
            if data is None:
                raise ValueError(f"{path}: the vector of {word!r} (record {record} of {count}) is truncated")
            keeper.seen += 1
            target = keeper.wants(word)
            if target is not None:
                try:
                    keeper.keep(word, target, np.frombuffer(data, dtype="<f4").astype(np.float32))
                except ValueError as err:
                    raise ValueError(f"{path}, record {record}: {err}") from None
    return dim


def read_embeddings(
    path: str | os.PathLike[str],
    vocabulary: Sequence[str] | None = None,
    *,
    format: str = "auto",
    encoding: str = "utf-8",
    lowercase_fallback: bool = True,
) -> Any:
    """Read word vectors into a gensim ``KeyedVectors``, keeping only ``vocabulary``'s words.

    Parameters
    ----------
    path : path
        word2vec text or binary, GloVe text, or fastText ``.vec``; gzip is
        recognised by its magic bytes.
    vocabulary : sequence of str, optional
        Words to keep. Only their rows are held in memory while the file
        streams by; None keeps every row.
    format : str
        One of :data:`EMBEDDING_FORMATS`; "auto" looks at the name (``.bin``)
        and the first line (a ``count dim`` header or not).
    lowercase_fallback : bool
        A vocabulary word missing from the file takes the vector of a cased
        form (``NASA`` for ``nasa``) when there is one.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"embedding file {p} does not exist")
    if not p.is_file() or p.stat().st_size == 0:
        raise ValueError(f"embedding file {p} is empty or not a file")
    if format not in EMBEDDING_FORMATS:
        raise ValueError(f"unknown embedding format {format!r}; choose one of {list(EMBEDDING_FORMATS)}")
    fmt = _detect_format(p) if format == "auto" else format
    keeper = _Keeper(vocabulary, lowercase_fallback)
    if fmt == "word2vec-binary":
        dim = _read_binary_vectors(p, keeper, encoding)
    else:
        dim = _read_text_vectors(p, fmt, keeper, encoding)
    words = list(keeper.rows) if vocabulary is None else [w for w in vocabulary if w in keeper.rows]
    matrix = np.stack([keeper.rows[w] for w in words]) if words else np.zeros((0, dim), dtype=np.float32)
    logger.info("read %d vectors of dimension %d from %s (%s); kept %d", keeper.seen, dim, p, fmt, len(words))
    return _keyed_vectors(words, matrix)


@dataclass
class AlignedEmbeddings:
    """Word vectors in the row order of a vocabulary.

    Attributes
    ----------
    vectors : ndarray of shape (V, E), float32
    found : ndarray of shape (V,), bool
        Rows that came from the embedding file; the others are seeded random
        vectors with the file vectors' per-dimension mean and spread.
    source : str
        Where the vectors came from (for reports and model provenance).
    """

    vectors: np.ndarray
    found: np.ndarray
    source: str = ""
    vocabulary: list[str] = field(default_factory=list, repr=False)

    @property
    def coverage(self) -> float:
        """Share of vocabulary words that have a pretrained vector."""
        return float(self.found.mean()) if self.found.size else 0.0

    @property
    def missing_words(self) -> list[str]:
        return [w for w, ok in zip(self.vocabulary, self.found) if not ok]

    @property
    def missing_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.found)

    def report(self) -> dict[str, Any]:
        missing = self.missing_words
        return {
            "source": self.source,
            "dimension": int(self.vectors.shape[1]),
            "vocabulary_size": int(self.vectors.shape[0]),
            "covered": int(self.found.sum()),
            "coverage": round(self.coverage, 6),
            "missing_examples": missing[:20],
        }


def align_embeddings(
    vectors: Any,
    vocabulary: Sequence[str],
    *,
    random_state: int | None = 0,
    source: str = "",
) -> AlignedEmbeddings:
    """Arrange ``vectors`` (a ``KeyedVectors`` or a word -> vector mapping) in ``vocabulary`` order.

    Words without a vector get a random normal vector with the mean and
    standard deviation of the found vectors, seeded by ``random_state``, so
    they start at the same scale as the rest. No word found is an error.
    """
    vocab = [str(w) for w in vocabulary]
    if not vocab:
        raise ValueError("the vocabulary is empty")
    lookup = _as_lookup(vectors)
    dim = lookup[1]
    table = np.zeros((len(vocab), dim), dtype=np.float32)
    found = np.zeros(len(vocab), dtype=bool)
    for i, word in enumerate(vocab):
        vec = lookup[0](word)
        if vec is not None:
            if vec.shape != (dim,):
                raise ValueError(f"the vector of {word!r} has shape {vec.shape}, expected ({dim},)")
            table[i] = vec
            found[i] = True
    where = f" in {source}" if source else ""
    if not found.any():
        raise ValueError(
            f"none of the {len(vocab)} vocabulary words has a vector{where} (first words: {vocab[:5]}); "
            "check that the file matches the corpus's language, case and tokenisation"
        )
    if (~found).any():
        rng = np.random.default_rng(random_state)
        mean, std = table[found].mean(axis=0), table[found].std(axis=0)
        std = np.where(std > 0, std, table[found].std() or 1.0)
        table[~found] = rng.normal(mean, std, size=(int((~found).sum()), dim)).astype(np.float32)
    aligned = AlignedEmbeddings(table, found, source=source, vocabulary=vocab)
    log = logger.warning if aligned.coverage < 0.5 else logger.info
    log("pretrained vectors%s cover %d of %d vocabulary words (%.1f%%)", where, int(found.sum()), len(vocab),
        100 * aligned.coverage)
    return aligned


def _as_lookup(vectors: Any) -> tuple[Any, int]:
    if hasattr(vectors, "key_to_index") and hasattr(vectors, "vector_size"):
        kv = vectors

        def get(word: str) -> np.ndarray | None:
            return np.asarray(kv[word], dtype=np.float32) if word in kv.key_to_index else None

        return get, int(kv.vector_size)
    if isinstance(vectors, Mapping):
        if not vectors:
            raise ValueError("the word -> vector mapping is empty")
        first = np.asarray(next(iter(vectors.values())))
        if first.ndim != 1:
            raise ValueError(f"word vectors must be 1-D, got shape {first.shape}")

        def get_map(word: str) -> np.ndarray | None:
            v = vectors.get(word)
            return None if v is None else np.asarray(v, dtype=np.float32)

        return get_map, int(first.shape[0])
    raise TypeError(f"expected gensim KeyedVectors or a mapping of word -> vector, got {type(vectors).__name__}")


def load_embeddings(
    path: str | os.PathLike[str],
    vocabulary: Sequence[str],
    *,
    format: str = "auto",
    encoding: str = "utf-8",
    random_state: int | None = 0,
) -> AlignedEmbeddings:
    """:func:`read_embeddings` then :func:`align_embeddings`: a file's vectors in vocabulary order."""
    kv = read_embeddings(path, vocabulary, format=format, encoding=encoding)
    return align_embeddings(kv, vocabulary, random_state=random_state, source=str(path))


def _stable_hash(text: str) -> int:
    """Python's ``hash`` of a str changes per process; gensim seeds word vectors with it."""
    return zlib.crc32(text.encode("utf-8"))


class _Sentences:
    """A re-iterable view of token lists (gensim iterates once per epoch)."""

    def __init__(self, sentences: Iterable[Sequence[str]]) -> None:
        self._data = [list(s) for s in sentences]

    def __iter__(self) -> Iterator[list[str]]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class _BagSentences:
    """The training documents of a corpus as token lists, each bag shuffled; re-read (same order) on every pass.

    Streams from ``corpus.document_chunks``, so memory does not grow with the
    corpus's tokens (gensim reads the sentences once per epoch).
    """

    def __init__(self, corpus: Any, seed: int, chunk_size: int) -> None:
        self._corpus, self._seed, self._chunk_size = corpus, seed, chunk_size
        self._words = np.asarray([str(w) for w in corpus.vocabulary], dtype=object)

    def __iter__(self) -> Iterator[list[str]]:
        rng = np.random.default_rng(self._seed)  # the same shuffles on every pass
        for chunk, _, _ in self._corpus.document_chunks(self._chunk_size, parts=("train",)):
            counts = chunk.counts.tocsr()
            for d in range(counts.shape[0]):
                lo, hi = counts.indptr[d], counts.indptr[d + 1]
                tokens = np.repeat(counts.indices[lo:hi], counts.data[lo:hi].astype(np.int64))
                if tokens.size:
                    yield self._words[rng.permutation(tokens)].tolist()


def train_skipgram(
    sentences: Iterable[Sequence[str]],
    *,
    vector_size: int = 300,
    window: int = 4,
    negative: int = 10,
    min_count: int = 2,
    epochs: int = 50,
    workers: int = 1,
    seed: int = 2019,
) -> Any:
    """Skip-gram word2vec (gensim ``Word2Vec``, ``sg=1``) with the authors' defaults.

    ``sentences`` are token lists in reading order (an iterator is read into
    memory; a re-iterable collection is read once per epoch). With ``workers=1`` the
    result is the same for the same seed and data; more workers are faster but
    their thread scheduling makes each run differ.
    """
    from gensim.models import Word2Vec

    # gensim reads the sentences once per epoch: a one-shot iterator is kept in memory, a collection (a list,
    # or a corpus that streams itself like corpus_skipgram's) is read again on each pass
    data = _Sentences(sentences) if isinstance(sentences, Iterator) else sentences
    if not any(len(s) for s in data):
        raise ValueError("no tokens to train word embeddings on")
    model = Word2Vec(
        sentences=data,
        sg=1,
        vector_size=vector_size,
        window=window,
        negative=negative,
        min_count=min_count,
        epochs=epochs,
        workers=workers,
        seed=seed,
        hashfxn=_stable_hash,
    )
    if len(model.wv) == 0:
        raise ValueError(f"no word occurs at least min_count={min_count} times; lower min_count")
    return model.wv


def save_word2vec(vectors: Any, path: str | os.PathLike[str], *, binary: bool = False) -> Path:
    """Write ``KeyedVectors`` as word2vec text (or binary), atomically."""
    words = list(vectors.index_to_key)
    matrix = np.asarray(vectors.vectors, dtype=np.float32)
    out = io.BytesIO()
    out.write(f"{len(words)} {matrix.shape[1]}\n".encode())
    for word, row in zip(words, matrix):
        if any(c.isspace() for c in word):
            raise ValueError(f"word {word!r} contains whitespace and cannot be written in word2vec format")
        if binary:
            out.write(word.encode("utf-8") + b" " + row.astype("<f4").tobytes() + b"\n")
        else:
            out.write((word + " " + " ".join(f"{v:.9g}" for v in row.tolist()) + "\n").encode("utf-8"))
    target = Path(path)
    atomic_write_bytes(target, out.getvalue())
    return target


def corpus_skipgram(
    corpus: Any,
    *,
    vector_size: int = 300,
    seed: int = 2019,
    chunk_size: int = 10_000,
) -> AlignedEmbeddings:
    """Skip-gram vectors of a corpus's vocabulary, learned from its training documents (the labelled ETM's rho).

    Why: on short documents (titles, posts) the word embeddings ETM learns
    jointly see a handful of co-occurrences per step and topics drift to rare
    words; skip-gram over the same documents, kept fixed, is the paper's own
    labelled ETM without any outside vectors. A prepared corpus holds bags of
    words, so each document's tokens are shuffled (seeded) and the window
    (:data:`CORPUS_SKIPGRAM_WINDOW`) spans a short document. ``corpus`` is a
    corpus source (``document_chunks``); only its "train" part is read, in
    chunks on every pass, so memory does not grow with its tokens.
    Vocabulary words absent from training get seeded random vectors, as
    in :func:`align_embeddings`.

    The last result is kept (one, in this process) under a digest of the
    vocabulary, the training documents and the settings: fitting again on
    the same corpus (another K, the next ``etm tune`` trial) reuses it
    instead of training the same vectors again; a copy is returned. It
    holds V x E floats until the next call trains others or
    :func:`clear_corpus_skipgram_cache` frees them.
    """
    def make(vocab: list[str], n_tokens: int) -> AlignedEmbeddings:
        epochs = int(np.clip(round(CORPUS_SKIPGRAM_TOKEN_PASSES / n_tokens), 5, 50))
        logger.info("skip-gram on %d training documents (%d tokens, %d epochs)", corpus.n_docs("train"), n_tokens,
                    epochs)
        vectors = train_skipgram(_BagSentences(corpus, seed, chunk_size), vector_size=vector_size,
                                 window=CORPUS_SKIPGRAM_WINDOW, min_count=1, epochs=epochs, workers=1, seed=seed)
        return align_embeddings(vectors, vocab, random_state=seed, source="skip-gram on the training documents")

    settings = (vector_size, seed, CORPUS_SKIPGRAM_WINDOW, CORPUS_SKIPGRAM_TOKEN_PASSES)
    return _kept_or_made(corpus, chunk_size, settings, make)


def corpus_ppmi(
    corpus: Any,
    *,
    vector_size: int = 300,
    seed: int = 2019,
    chunk_size: int = 10_000,
) -> AlignedEmbeddings:
    """Word vectors of a corpus's vocabulary from the SVD of its training documents' positive PMI matrix.

    Why: the same use as :func:`corpus_skipgram` (fixed word embeddings
    learned from the corpus itself), computed in a second or so instead of
    skip-gram's epochs, deterministic for the same seed and data. Two words
    co-occur when they share a training document (bags of words have no
    order); PMI uses context-distribution smoothing
    (:data:`PPMI_CONTEXT_SMOOTHING`) and negative values are cut to 0, after
    Levy, Goldberg and Dagan (TACL 2015); the vectors are ``U S`` of a
    truncated randomised SVD (scikit-learn): on CiteSeer-M10 the full
    singular values gave more coherent and more diverse topics than their
    square root (docs/benchmarks/recipe.md, "Twelfth session"). Contexts are the
    :data:`PPMI_MAX_CONTEXTS` most frequent training words, so memory grows
    with the distinct co-occurring pairs, at most V x that many. A word that
    shares no training document with a context word (``found`` False) gets
    a zero vector: under cosine similarity every topic is equally near it
    (seeded random vectors, as :func:`align_embeddings` gives missing words,
    raised M10's test perplexity at K = 100 from 529 to 596); when the SVD has
    fewer than ``vector_size`` components (a vocabulary smaller than that),
    the rest are 0.
    The last result is kept as :func:`corpus_skipgram`'s is.
    """
    settings = ("ppmi", vector_size, seed, PPMI_MAX_CONTEXTS, PPMI_CONTEXT_SMOOTHING)
    return _kept_or_made(corpus, chunk_size, settings,
                         lambda vocab, n_tokens: _ppmi_vectors(corpus, vocab, n_tokens, vector_size, seed, chunk_size))


def _ppmi_vectors(corpus: Any, vocab: list[str], n_tokens: int, vector_size: int, seed: int,
                  chunk_size: int) -> AlignedEmbeddings:
    """:func:`corpus_ppmi`'s computation, once the kept vectors did not serve."""
    from sklearn.utils.extmath import randomized_svd

    totals = np.asarray(corpus.word_totals("train"), dtype=np.float64)
    contexts = np.sort(np.argsort(-totals, kind="stable")[:min(len(vocab), PPMI_MAX_CONTEXTS)])
    pairs = _cooccurrences(corpus, contexts, chunk_size)
    ppmi = _positive_pmi(pairs)
    rank = int(min(vector_size, *ppmi.shape))
    vectors = np.zeros((len(vocab), vector_size), dtype=np.float32)
    if rank > 0 and ppmi.nnz:
        u, singular, _ = randomized_svd(ppmi, rank, n_iter=7, random_state=seed)
        vectors[:, :rank] = u * singular
    found = ppmi.getnnz(axis=1) > 0  # a word with no positive PMI has no vector (U's row is 0 up to rounding)
    if not found.any():
        raise ValueError("no two vocabulary words share a training document: there is nothing to learn word "
                         "embeddings from (use corpus_embeddings=False)")
    vectors[~found] = 0.0  # equally near every topic: a random vector would give it a random topic instead
    logger.info("PPMI vectors of %d training documents (%d tokens, %d contexts, %d components); %d of %d words "
                "share no training document with a context word and get a zero vector", corpus.n_docs("train"),
                n_tokens, len(contexts), rank, int((~found).sum()), len(vocab))
    return AlignedEmbeddings(vectors, found, "PPMI of the training documents", vocab)


def _cooccurrences(corpus: Any, contexts: np.ndarray, chunk_size: int) -> Any:
    """(V, contexts) counts of training documents holding both words; a word is not its own context."""
    import scipy.sparse as sp

    total = None
    for chunk, _, _ in corpus.document_chunks(chunk_size, parts=("train",)):
        present = sp.csr_matrix(chunk.counts, dtype=np.float64, copy=True)
        present.data[:] = 1.0
        part = (present.T @ present[:, contexts]).tocsr()
        total = part if total is None else total + part
    total = total.tocoo()
    own = contexts[total.col] == total.row
    return sp.csr_matrix((total.data[~own], (total.row[~own], total.col[~own])), shape=total.shape)


def _positive_pmi(pairs: Any) -> Any:
    """``max(0, log(#(w, c) / (#(w) P_a(c))))`` with ``P_a(c)`` the smoothed context distribution, sparse."""
    import scipy.sparse as sp

    coo = pairs.tocoo()
    word = np.asarray(pairs.sum(axis=1)).ravel()
    context = np.asarray(pairs.sum(axis=0)).ravel() ** PPMI_CONTEXT_SMOOTHING
    with np.errstate(divide="ignore"):
        pmi = np.log(coo.data) + np.log(context.sum()) - np.log(word[coo.row]) - np.log(context[coo.col])
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=pairs.shape)


def corpus_vectors(corpus: Any, method: str, **kwargs: Any) -> AlignedEmbeddings:
    """The corpus's own word vectors by ``method``, one of :data:`CORPUS_EMBEDDING_METHODS`."""
    if method == "skipgram":
        return corpus_skipgram(corpus, **kwargs)
    if method == "ppmi":
        return corpus_ppmi(corpus, **kwargs)
    raise ValueError(f"unknown corpus embedding method {method!r}; choose from {', '.join(CORPUS_EMBEDDING_METHODS)}")


#: The last result of :func:`corpus_skipgram` or :func:`corpus_ppmi`, under the digest of what made it.
_last_corpus_vectors: tuple[str, AlignedEmbeddings] | None = None


def _kept_or_made(corpus: Any, chunk_size: int, settings: tuple[Any, ...],
                  make: Callable[[list[str], int], AlignedEmbeddings]) -> AlignedEmbeddings:
    """A copy of the kept vectors when the vocabulary, training documents and ``settings`` are the same, else
    ``make(vocab, n_tokens)``'s, kept for next time: the one cache of both kinds of corpus vectors."""
    global _last_corpus_vectors
    vocab = [str(w) for w in corpus.vocabulary]
    digest, n_tokens = _training_digest(corpus, vocab, chunk_size, settings)
    if n_tokens == 0:
        raise ValueError("the corpus has no training tokens to learn word embeddings from")
    if _last_corpus_vectors is not None and _last_corpus_vectors[0] == digest:
        logger.debug("corpus vectors of these training documents: reused from the previous fit")
        return _copy_aligned(_last_corpus_vectors[1])
    aligned = make(vocab, n_tokens)
    _last_corpus_vectors = (digest, _copy_aligned(aligned))
    return aligned


def clear_corpus_skipgram_cache() -> None:
    """Forget the kept corpus vectors (skip-gram or PPMI): the next call computes them (e.g. to time a whole fit)."""
    global _last_corpus_vectors
    _last_corpus_vectors = None


def _copy_aligned(aligned: AlignedEmbeddings) -> AlignedEmbeddings:
    return AlignedEmbeddings(aligned.vectors.copy(), aligned.found.copy(), aligned.source, list(aligned.vocabulary))


def _training_digest(corpus: Any, vocab: list[str], chunk_size: int, settings: tuple[Any, ...]) -> tuple[str, int]:
    """A digest of ``vocab``, the training documents and ``settings``, and the training tokens, in one pass."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr(settings).encode())
    h.update("\0".join(vocab).encode("utf-8", "surrogatepass"))
    n_tokens = 0
    for chunk, _, _ in corpus.document_chunks(chunk_size, parts=("train",)):
        counts = chunk.counts.tocsr()
        if not counts.has_sorted_indices:
            counts = counts.sorted_indices()  # a copy: the corpus's own matrix is left as it is
        for array in (counts.indptr.astype(np.int64), counts.indices.astype(np.int64),
                      counts.data.astype(np.float64)):
            h.update(array.tobytes())
        h.update(b"|")
        n_tokens += int(counts.data.sum())
    return h.hexdigest(), n_tokens
