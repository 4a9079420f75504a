"""benchmarks/short_documents.py: the corpora of known document length it compares on (tomotopy is bench-only)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import short_documents  # noqa: E402


def test_cut_corpora_keep_the_vocabulary_and_the_authors_test_halves(shared_data: Path, authors_corpus) -> None:
    short = short_documents.cut(shared_data, 10)
    lengths = np.asarray(short.train.counts.sum(axis=1)).ravel()
    assert lengths.max() == 10 and 9.5 < lengths.mean() <= 10
    assert short.train.n_docs == authors_corpus.train.n_docs and short.vocabulary == authors_corpus.vocabulary
    # every cut document is a sub-bag of its message
    assert (short.train.counts > authors_corpus.train.counts).nnz == 0
    assert (short.test_halves[0] != authors_corpus.test_halves[0]).nnz == 0
    assert short.valid_halves is not None and short.valid_halves[0].shape[0] > 0


def test_subject_lines_are_distinct_short_documents(shared_data: Path) -> None:
    corpus = short_documents.subject_lines(shared_data)
    assert corpus.train.n_tokens / corpus.train.n_docs < 4
    assert corpus.train.n_docs > 4000 and corpus.test.n_docs > 2000
