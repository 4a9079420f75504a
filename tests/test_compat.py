"""The authors' module layout keeps working: ``from etm import ETM, data`` and ``etm.utils``."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from etm import ETM, data
from etm.utils import get_document_frequency, get_topic_coherence, get_topic_diversity, nearest_neighbors


@pytest.fixture(scope="module")
def authors_data(shared_data):
    return data.get_data(shared_data / "20ng-etm")


def test_get_data_has_the_authors_shapes(authors_data, authors_corpus) -> None:
    vocab, train, valid, test = authors_data
    assert vocab == authors_corpus.vocabulary and len(vocab) == 3072
    assert set(train) == set(valid) == {"tokens", "counts"}
    assert set(test) == {"tokens", "counts", "tokens_1", "counts_1", "tokens_2", "counts_2"}
    assert train["tokens"].dtype == object and train["tokens"][0].shape[0] == 1  # (1, n) per document
    assert len(train["tokens"]) == authors_corpus.train.n_docs
    assert sum(int(c.sum()) for c in train["counts"]) == int(authors_corpus.train.counts.sum())
    assert len(test["tokens_1"]) == len(test["tokens_2"]) == authors_corpus.test.n_docs


def test_get_batch_is_the_dense_bag_of_words(authors_data, authors_corpus) -> None:
    vocab, train, _, _ = authors_data
    ind = torch.tensor([5, 0, 17])
    batch = data.get_batch(train["tokens"], train["counts"], ind, len(vocab), "cpu")
    assert batch.dtype == torch.float32 and batch.shape == (3, 3072)
    np.testing.assert_array_equal(batch.numpy(), authors_corpus.train.counts[[5, 0, 17]].toarray())
    assert data.get_batch(train["tokens"], train["counts"], [-1], len(vocab), "cpu").sum() == 0


def test_the_authors_training_loop_runs(authors_data) -> None:
    """A loop in the style of the authors' main.py, against etm's module."""
    vocab, train, _, _ = authors_data
    torch.manual_seed(0)
    model = ETM(num_topics=5, vocab_size=len(vocab), t_hidden_size=32, rho_size=16, emsize=16,
                theta_act="relu", enc_drop=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    indices = torch.split(torch.arange(600), 200)
    losses = []
    for _ in range(4):
        for ind in indices:
            optimizer.zero_grad()
            model.zero_grad()
            data_batch = data.get_batch(train["tokens"], train["counts"], ind, len(vocab), "cpu")
            sums = data_batch.sum(1).unsqueeze(1)
            normalized_data_batch = data_batch / sums
            recon_loss, kld_theta = model(data_batch, normalized_data_batch)
            total_loss = recon_loss + kld_theta
            total_loss.backward()
            optimizer.step()
            losses.append(total_loss.item())
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    beta = model.get_beta().data.cpu().numpy()
    assert 0 < get_topic_diversity(beta, 25) <= 1


def _authors_coherence_loop(beta: np.ndarray, docs: list[set[int]]) -> float:
    """The authors' get_topic_coherence, transcribed as a plain loop (top 11 words, -1 for unseen pairs)."""
    n_docs = len(docs)
    scores = []
    for k in range(beta.shape[0]):
        top = list(beta[k].argsort()[-11:][::-1])
        total, counter = 0.0, 0
        for i, j in itertools.combinations(range(len(top)), 2):
            d_i = sum(top[i] in d for d in docs)
            d_j = sum(top[j] in d for d in docs)
            d_ij = sum(top[i] in d and top[j] in d for d in docs)
            if d_ij == 0:
                f = -1.0
            else:
                f = -1 + (np.log(d_i) + np.log(d_j) - 2.0 * np.log(n_docs)) / (np.log(d_ij) - np.log(n_docs))
            total += f
            counter += 1
        scores.append(total)
    return float(np.mean(scores) / counter)


def test_coherence_matches_the_authors_loop(authors_data) -> None:
    vocab, train, _, _ = authors_data
    tokens = train["tokens"][:300]
    rng = np.random.default_rng(0)
    beta = rng.dirichlet(np.full(len(vocab), 0.05), size=4)
    frequent = np.argsort(-np.bincount(np.concatenate([t.ravel() for t in tokens]), minlength=len(vocab)))[:30]
    beta[0, frequent[:11]] += 1.0  # one topic of frequent, co-occurring words
    expected = _authors_coherence_loop(beta, [set(t.ravel().tolist()) for t in tokens])
    assert get_topic_coherence(beta, tokens, vocab) == pytest.approx(expected, rel=1e-9)
    assert get_topic_coherence(torch.from_numpy(beta), tokens, vocab) == pytest.approx(expected, rel=1e-9)
    w = int(frequent[0])
    assert get_document_frequency(tokens, w) == sum(w in set(t.ravel().tolist()) for t in tokens)


def test_topic_diversity_and_nearest_neighbors() -> None:
    beta = np.array([[0.5, 0.3, 0.2, 0.0], [0.5, 0.0, 0.2, 0.3]])
    assert get_topic_diversity(beta, 2) == pytest.approx(3 / 4)  # {0, 1} and {0, 3}
    vocab = [f"w{i}" for i in range(30)]
    emb = torch.from_numpy(np.random.default_rng(1).normal(size=(30, 5)))
    out = nearest_neighbors("w3", emb, vocab)
    e = emb.numpy()
    cos = e @ e[3] / (np.linalg.norm(e, axis=1) * np.linalg.norm(e[3]))
    assert len(out) == 20 and out[0] == "w3"
    assert out == [vocab[i] for i in np.argsort(-cos)[:20]]
    with pytest.raises(ValueError, match="'andrew' is not in the model's vocabulary"):
        nearest_neighbors("andrew", emb, vocab)
