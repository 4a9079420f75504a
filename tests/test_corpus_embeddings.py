"""Word vectors of the corpus itself, kept fixed, on short documents (``corpus_embeddings``): the rule, skip-gram's.

The default method, PPMI, has its own tests (test_corpus_ppmi.py); these ask for skip-gram where they check it.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from etm import TopicModel
from etm.corpus import Corpus, PreparedCorpus
from etm.embeddings import clear_corpus_skipgram_cache, corpus_ppmi, corpus_skipgram
from etm.options import SHORT_DOCUMENT_TOKENS

SMALL = dict(hidden_size=32, embedding_size=16, epochs=2, batch_size=100, lr=0.01, device="cpu", random_state=5)
SKIPGRAM = dict(SMALL, corpus_embedding_method="skipgram")


@pytest.fixture(autouse=True)
def _no_kept_vectors(monkeypatch) -> None:
    """Each test starts without corpus_skipgram's kept result, so it trains the vectors it checks."""
    import etm.embeddings

    monkeypatch.setattr(etm.embeddings, "_last_corpus_vectors", None)


def _themed_corpus(n_docs: int, length: int, seed: int = 0) -> PreparedCorpus:
    """Documents of ``length`` tokens, each drawn from one of three disjoint word groups (30 words in all)."""
    rng = np.random.default_rng(seed)
    rows = []
    for d in range(n_docs):
        theme = d % 3
        rows.append(np.bincount(rng.integers(10 * theme, 10 * theme + 10, size=length), minlength=30))
    vocab = [f"w{i}" for i in range(30)]
    corpus = Corpus(sp.csr_matrix(np.vstack(rows)), vocab)
    return PreparedCorpus.from_splits(corpus.subset(np.arange(n_docs - 60)),
                                      corpus.subset(np.arange(n_docs - 60, n_docs)), None)


def test_short_documents_get_fixed_skipgram_vectors_of_their_own_corpus() -> None:
    corpus = _themed_corpus(360, 6)
    model = TopicModel(3, **SKIPGRAM).fit(corpus)
    assert model.corpus_embeddings is None and model.corpus_embeddings_ is True
    clear_corpus_skipgram_cache()
    expected = corpus_skipgram(corpus, vector_size=16, seed=5)
    np.testing.assert_array_equal(model.word_embeddings_, expected.vectors)  # fixed during training
    assert model.embedding_report_["source"] == "skip-gram on the training documents"
    # the vectors hold the co-occurrence: a word's nearest neighbour is from its own group
    v = expected.vectors / np.linalg.norm(expected.vectors, axis=1, keepdims=True)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    assert (sims.argmax(axis=1) // 10 == np.arange(30) // 10).all()


def test_the_rule_is_the_mean_training_document_length() -> None:
    short = TopicModel(3, **SMALL).fit(_themed_corpus(360, SHORT_DOCUMENT_TOKENS - 1))
    long = TopicModel(3, **SMALL).fit(_themed_corpus(360, SHORT_DOCUMENT_TOKENS))
    assert short.corpus_embeddings_ is True and long.corpus_embeddings_ is False
    assert long.embedding_report_ is None


def test_learned_embeddings_change_in_training_and_the_switch_overrides_the_rule() -> None:
    corpus = _themed_corpus(360, 6)
    learned = TopicModel(3, corpus_embeddings=False, **SMALL).fit(corpus)
    assert learned.corpus_embeddings_ is False and learned.embedding_report_ is None
    forced = TopicModel(3, corpus_embeddings=True, **SMALL).fit(_themed_corpus(360, 60))
    assert forced.corpus_embeddings_ is True
    tuned = TopicModel(3, corpus_embeddings=True, fine_tune_embeddings=True, **SMALL).fit(corpus)
    start = corpus_ppmi(corpus, vector_size=16, seed=5).vectors
    assert not np.allclose(tuned.word_embeddings_, start)  # fine-tuning starts from them and moves them


def test_pretrained_embeddings_win_and_both_at_once_is_an_error() -> None:
    corpus = _themed_corpus(360, 6)
    vectors = np.random.default_rng(1).normal(size=(30, 16)).astype(np.float32)
    given = TopicModel(3, embeddings=vectors, **SMALL).fit(corpus)
    assert given.corpus_embeddings_ is False
    np.testing.assert_array_equal(given.word_embeddings_, vectors)
    with pytest.raises(ValueError, match="corpus_embeddings=True .* pretrained `embeddings`"):
        TopicModel(3, embeddings=vectors, corpus_embeddings=True, **SMALL).fit(corpus)


def test_the_vectors_are_deterministic_by_seed_and_read_only_training_documents() -> None:
    corpus = _themed_corpus(360, 6)
    a = corpus_skipgram(corpus, vector_size=8, seed=3)
    clear_corpus_skipgram_cache()
    b = corpus_skipgram(corpus, vector_size=8, seed=3)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, corpus_skipgram(corpus, vector_size=8, seed=4).vectors)
    # a word that occurs only in validation documents has no skip-gram vector: it gets a seeded random one
    counts = corpus.valid.counts.tolil()
    counts[0, 0] += 5
    train = corpus.train.counts.tolil()
    train[:, 0] = 0
    moved = PreparedCorpus.from_splits(Corpus(train.tocsr(), corpus.vocabulary), Corpus(counts.tocsr(),
                                                                                       corpus.vocabulary), None)
    aligned = corpus_skipgram(moved, vector_size=8, seed=3)
    assert not aligned.found[0] and aligned.found[1:].all()


def test_a_second_fit_on_the_same_documents_reuses_the_vectors(monkeypatch) -> None:
    """Another K (or the next ``etm tune`` trial) on the same corpus does not train the same skip-gram again."""
    import etm.embeddings as embeddings

    calls = []
    real = embeddings.train_skipgram
    monkeypatch.setattr(embeddings, "train_skipgram", lambda *a, **k: calls.append(k) or real(*a, **k))
    corpus = _themed_corpus(360, 6)
    first = TopicModel(3, **SKIPGRAM).fit(corpus)
    second = TopicModel(4, **SKIPGRAM).fit(corpus)
    assert len(calls) == 1
    np.testing.assert_array_equal(first.word_embeddings_, second.word_embeddings_)
    # a fit on reused vectors is the same model as one that trained them (same seed, same numbers)
    again_fit = TopicModel(3, **SKIPGRAM).fit(corpus)
    assert len(calls) == 1
    np.testing.assert_array_equal(again_fit.topic_word_, first.topic_word_)
    # what it returns is a copy: changing it does not change the next result
    again = corpus_skipgram(corpus, vector_size=16, seed=5)
    again.vectors[:] = 0
    np.testing.assert_array_equal(corpus_skipgram(corpus, vector_size=16, seed=5).vectors, first.word_embeddings_)
    assert len(calls) == 1
    # another seed, size or a changed training document trains again (an equal copy of the corpus does not)
    corpus_skipgram(corpus, vector_size=16, seed=6)
    corpus_skipgram(corpus, vector_size=8, seed=6)
    assert len(calls) == 3
    changed = corpus.train.counts.tolil()
    changed[0, 0] += 1
    other = PreparedCorpus.from_splits(Corpus(changed.tocsr(), corpus.vocabulary), corpus.valid, None)
    corpus_skipgram(other, vector_size=8, seed=6)
    assert len(calls) == 4
    copy = PreparedCorpus.from_splits(Corpus(corpus.train.counts.copy(), list(corpus.vocabulary)), corpus.valid, None)
    corpus_skipgram(copy, vector_size=8, seed=6)
    corpus_skipgram(corpus, vector_size=8, seed=6)
    assert len(calls) == 5


def test_empty_training_documents_are_a_clear_error() -> None:
    vocab = ["a", "b"]
    empty = PreparedCorpus.from_splits(Corpus(sp.csr_matrix((3, 2)), vocab), None, None)
    with pytest.raises(ValueError, match="no training tokens"):
        corpus_skipgram(empty, vector_size=4)


def test_on_m10_titles_the_default_gives_more_coherent_topics_than_learned_embeddings(shared_data) -> None:
    """CiteSeer-M10 (six-word titles): NPMI over the training titles, the default against learned ``rho``."""
    from etm.metrics import top_word_indices, topic_coherence
    from etm.readers import read_octis

    corpus = read_octis(shared_data / "octis-m10")
    # the default 300 dimensions: PPMI vectors cut to 64 components lose much of the co-occurrence they hold
    common = dict(epochs=10, hidden_size=64, device="cpu", random_state=2019)
    default = TopicModel(20, **common).fit(corpus)
    learned = TopicModel(20, corpus_embeddings=False, **common).fit(corpus)
    assert default.corpus_embeddings_ is True
    coherence = {name: topic_coherence(top_word_indices(m.topic_word_, 10), corpus.train.counts)
                 for name, m in (("default", default), ("learned", learned))}
    assert coherence["default"] > coherence["learned"] + 0.1, coherence


def test_etm_train_says_where_the_word_embeddings_came_from(tmp_path, capsys) -> None:
    """`etm train` on short documents prints and records the choice; `--corpus-embeddings 0` turns it off."""
    import json

    from etm.cli import main

    lines = [json.dumps({"text": " ".join(f"w{t}" for t in doc)}) for doc in
             np.random.default_rng(0).integers(0, 40, size=(300, 5)).tolist()]
    (tmp_path / "short.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["prepare", str(tmp_path / "short.jsonl"), "-o", str(tmp_path / "corpus"), "--quiet",
                 "--token-pattern", r"\w+"]) == 0
    capsys.readouterr()
    small = ["--num-topics", "3", "--t-hidden-size", "16", "--rho-size", "8", "--epochs", "1", "--quiet",
             "--device", "cpu"]
    assert main(["train", str(tmp_path / "corpus"), "-o", str(tmp_path / "m1"), *small]) == 0
    out = capsys.readouterr().out
    assert "word embeddings PPMI of the training documents (short documents; --corpus-embeddings 0" in out
    assert main(["train", str(tmp_path / "corpus"), "-o", str(tmp_path / "m3"), "--corpus-embedding-method",
                 "skipgram", *small]) == 0
    assert "word embeddings skip-gram on the training documents (short documents;" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "corpus"), "-o", str(tmp_path / "m2"), "--corpus-embeddings", "0",
                 "--json", *small]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["corpus_embeddings"] is False and summary["embeddings"] is None
