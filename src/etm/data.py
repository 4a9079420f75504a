"""Compatibility layer: the ETM authors' ``data.py``, over the clean API.

Code written against the original repository (``import data``;
``vocab, train, valid, test = data.get_data(path)``; ``data.get_batch(...)``)
keeps working with ``from etm import data``. The return values have the
authors' shapes: ``tokens`` / ``counts`` are 1-D object arrays with one
``(1, n)`` array per document, exactly what ``scipy.io.loadmat(...).squeeze()``
gave them. The vocabulary pickle is read with a restricted unpickler that
accepts only a list of strings. New code should use
:func:`etm.readers.read_authors_format`, which returns sparse matrices.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from etm.corpus.formats import _load_mat_rows, _load_vocab_pkl

__all__ = ["get_data", "get_batch"]

_PARTS = {"train": "tr", "valid": "va", "test": "ts"}


def _as_authors_rows(rows: list[np.ndarray], dtype: type) -> np.ndarray:
    out = np.empty(len(rows), dtype=object)
    for i, row in enumerate(rows):
        out[i] = np.asarray(row, dtype=dtype).reshape(1, -1)
    return out


def _fetch(path: Path, name: str) -> dict[str, np.ndarray]:
    key = _PARTS[name]
    result: dict[str, np.ndarray] = {}
    suffixes = [("", key)] + ([("_1", f"{key}_h1"), ("_2", f"{key}_h2")] if name == "test" else [])
    for suffix, stem in suffixes:
        tokens_file, counts_file = path / f"bow_{stem}_tokens.mat", path / f"bow_{stem}_counts.mat"
        for f in (tokens_file, counts_file):
            if not f.is_file():
                raise FileNotFoundError(f"{f} is missing: {path} is not a complete ETM authors' data directory")
        tokens = _load_mat_rows(tokens_file, "tokens")
        counts = _load_mat_rows(counts_file, "counts")
        if len(tokens) != len(counts):
            raise ValueError(f"{tokens_file} has {len(tokens)} documents but {counts_file} has {len(counts)}")
        result["tokens" + suffix] = _as_authors_rows(tokens, np.int64)
        result["counts" + suffix] = _as_authors_rows(counts, np.int64)
    return result


def get_data(path: str | os.PathLike[str]) -> tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``vocab, train, valid, test`` as the authors' ``data.get_data`` returns them.

    ``train`` and ``valid`` hold ``tokens`` and ``counts``; ``test`` also holds
    ``tokens_1``/``counts_1`` and ``tokens_2``/``counts_2``, the two halves for
    document completion.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"data directory {root} does not exist")
    vocab_file = root / "vocab.pkl"
    if not vocab_file.is_file():
        raise FileNotFoundError(f"{vocab_file} is missing: {root} is not an ETM authors' data directory")
    vocab = _load_vocab_pkl(vocab_file)
    train, valid, test = (_fetch(root, name) for name in ("train", "valid", "test"))
    return vocab, train, valid, test


def get_batch(
    tokens: Sequence[np.ndarray],
    counts: Sequence[np.ndarray],
    ind: Sequence[int] | np.ndarray | torch.Tensor,
    vocab_size: int,
    device: torch.device | str,
    emsize: int = 300,
) -> torch.Tensor:
    """Dense ``(len(ind), vocab_size)`` float tensor of counts, as in the authors' code.

    Index ``-1`` gives an empty row (the authors' padding convention).
    ``emsize`` is accepted and unused, as in the original. For training, the
    sparse path of :mod:`etm.training` avoids this dense matrix.
    """
    idx = [int(i) for i in (ind.tolist() if hasattr(ind, "tolist") else ind)]
    batch = np.zeros((len(idx), int(vocab_size)), dtype=np.float32)
    for row, doc_id in enumerate(idx):
        if doc_id == -1:
            continue
        words = np.asarray(tokens[doc_id]).ravel().astype(np.int64)
        values = np.asarray(counts[doc_id]).ravel()
        if words.size != values.size:
            raise ValueError(f"document {doc_id} has {words.size} tokens but {values.size} counts")
        if words.size and (words.min() < 0 or words.max() >= vocab_size):
            raise ValueError(f"document {doc_id} has a word index outside vocab_size={vocab_size}")
        np.add.at(batch[row], words, values)
    return torch.from_numpy(batch).to(device)
