"""The product-of-experts decoder (``ETM(decoder="product")``): formula, evaluation, persistence, resume."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from etm import ETM, TopicModel
from etm.model import SparseBatch
from etm.persistence import load_model, save_model
from etm.training import TrainingConfig, evaluate_completion, infer_theta, train


def _product(corpus, seed: int = 0, **kw) -> ETM:
    torch.manual_seed(seed)
    return ETM(8, len(corpus.vocabulary), 64, 32, enc_drop=0.1, similarity="cosine", temperature=0.2,
               decoder="product", **kw)


def _cfg(**kw) -> TrainingConfig:
    base = dict(epochs=3, batch_size=500, lr=0.01, seed=7, checkpoint_every=1)
    base.update(kw)
    return TrainingConfig(**base)


def _direct_loss(model: ETM, bows: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """The decoder written out: shares over topics, batch statistics, fixed scale 1, learned shift."""
    rho = model.rho.weight / model.rho.weight.norm(dim=1, keepdim=True)
    alphas = model.alphas.weight / model.alphas.weight.norm(dim=1, keepdim=True)
    shares = torch.softmax(rho @ alphas.t() / model.temperature, dim=1)  # (V, K), rows sum to 1
    x = theta @ shares.t()
    mean, var = x.mean(0), x.var(0, unbiased=False)
    logits = (x - mean) / torch.sqrt(var + model.decoder_bn.eps) + model.decoder_bn.bias
    return -(torch.log_softmax(logits, dim=1) * bows).sum(1)


def test_loss_matches_the_direct_formula_sparse_and_dense() -> None:
    torch.manual_seed(0)
    model = ETM(4, 30, 16, 8, similarity="cosine", temperature=0.3, decoder="product").train()
    with torch.no_grad():
        model.decoder_bn.bias.normal_()
    counts = sp.random(12, 30, density=0.3, random_state=1, format="csr",
                       data_rvs=lambda n: np.ceil(5 * np.random.default_rng(2).random(n)))
    dense = torch.as_tensor(counts.toarray(), dtype=torch.float32)
    theta = torch.softmax(torch.randn(12, 4), dim=1)
    sparse_loss, topic_word = model._loss_terms(SparseBatch.from_scipy(counts), theta)
    # what the regularizers see: each topic's distribution under the decoder, as get_beta() gives it
    assert torch.allclose(topic_word, model.get_beta()) and torch.allclose(topic_word.sum(1), torch.ones(4))
    dense_loss, _ = model._loss_terms(dense, theta)
    expected = _direct_loss(model, dense, theta)
    assert torch.allclose(sparse_loss, expected, rtol=1e-5, atol=1e-4)
    assert torch.allclose(dense_loss, expected, rtol=1e-5, atol=1e-4)


def test_the_encoder_mean_is_batch_normalised_per_topic() -> None:
    torch.manual_seed(0)
    model = ETM(4, 30, 16, 8, decoder="product").train()
    bows = torch.rand(64, 30)
    mu, _, _ = model.encode(bows / bows.sum(1, keepdim=True))
    assert torch.allclose(mu.mean(0), torch.zeros(4), atol=1e-5)  # shift 0 at the start
    assert torch.allclose(mu.var(0, unbiased=False), torch.ones(4), atol=1e-2)
    raw = model.mu_q_theta(model.q_theta(bows / bows.sum(1, keepdim=True)))
    assert not torch.allclose(raw.mean(0), torch.zeros(4), atol=1e-3)


def test_beta_is_the_decoders_distribution_of_a_one_topic_document(small_corpus) -> None:
    model = train(_product(small_corpus), small_corpus, _cfg(epochs=1)).model.eval()
    beta = model.get_beta()
    assert beta.shape == (8, len(small_corpus.vocabulary))
    assert torch.allclose(beta.sum(1), torch.ones(8), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(model.predictive_log_probs(torch.eye(8)).exp(), beta, atol=1e-6)


def test_perplexity_is_the_decoders_own_likelihood(small_corpus) -> None:
    model = train(_product(small_corpus), small_corpus, _cfg(epochs=2)).model.eval()
    h1, h2 = small_corpus.test_halves
    theta = torch.as_tensor(infer_theta(model, h1))
    with torch.no_grad():
        log_probs = model.predictive_log_probs(theta).double().numpy()
    counts = sp.csr_matrix(h2, dtype=np.float64)
    ll = np.asarray(counts.multiply(log_probs).sum(axis=1)).ravel()
    n = np.asarray(counts.sum(axis=1)).ravel()
    expected = float(np.exp(np.mean(-ll / n)))
    scores = evaluate_completion(model, h1, h2)
    assert scores.perplexity_per_document == pytest.approx(expected, rel=1e-5)
    # and it is not the mixture's theta @ beta
    beta = model.get_beta().detach().double().numpy()
    mixture = np.asarray(counts.multiply(np.log(theta.double().numpy() @ beta)).sum(1))
    assert float(np.exp(np.mean(-mixture.ravel() / n))) != pytest.approx(expected, rel=1e-3)


def test_save_and_load_keep_the_decoder_and_its_statistics(small_corpus, tmp_path) -> None:
    model = train(_product(small_corpus), small_corpus, _cfg(epochs=1)).model.eval()
    assert model.decoder_bn.num_batches_tracked.item() > 0
    save_model(tmp_path / "m", model, small_corpus.vocabulary)
    loaded, _, config = load_model(tmp_path / "m")
    assert config["model"]["decoder"] == "product" and loaded.decoder == "product"
    assert torch.equal(loaded.decoder_bn.running_mean, model.decoder_bn.running_mean)
    assert torch.equal(loaded.get_beta(), model.get_beta())
    h1, h2 = small_corpus.test_halves
    assert evaluate_completion(loaded, h1, h2) == evaluate_completion(model, h1, h2)


def test_same_seed_same_numbers_and_resume_is_exact(small_corpus, tmp_path) -> None:
    straight = train(_product(small_corpus), small_corpus, _cfg(epochs=4))
    again = train(_product(small_corpus), small_corpus, _cfg(epochs=4))
    assert [h["loss"] for h in straight.history] == [h["loss"] for h in again.history]
    assert torch.equal(straight.model.get_beta(), again.model.get_beta())

    def interrupt(epoch: int, batch: int, loss: float) -> None:
        if (epoch, batch) == (3, 2):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_product(small_corpus), small_corpus, _cfg(epochs=4), checkpoint_dir=tmp_path, on_batch_end=interrupt)
    resumed = train(_product(small_corpus, seed=5), small_corpus, _cfg(epochs=4), checkpoint_dir=tmp_path,
                    resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    state, expected = resumed.model.state_dict(), straight.model.state_dict()
    assert all(torch.equal(state[k], expected[k]) for k in expected)  # incl. the running statistics


def test_background_belongs_to_the_mixture_and_errors_name_the_choices() -> None:
    background = torch.log(torch.tensor([0.5, 0.3, 0.1, 0.1]))
    with pytest.raises(ValueError, match=r"background is a term of the mixture decoder.*pass background=None"):
        ETM(2, 4, 8, 4, background=background, decoder="product")
    model = ETM(2, 4, 8, 4, decoder="product")
    for bn in (model.decoder_bn, model.mu_bn):
        assert not bn.weight.requires_grad  # the scale stays 1
        assert bn.bias.requires_grad  # the shift is learned
    with pytest.raises(ValueError, match=r"unknown decoder 'poe'; choose one of \['mixture', 'product'\]"):
        ETM(2, 4, 8, 4, decoder="poe")
    with pytest.raises(ValueError, match="decoder"):
        TopicModel(n_topics=2, decoder="poe").fit(sp.csr_matrix(np.ones((4, 4))))


def test_estimator_trains_a_product_model_with_better_topics_than_chance(small_corpus) -> None:
    model = TopicModel(n_topics=8, decoder="product", epochs=3, random_state=0, hidden_size=64, embedding_size=32)
    model.fit(small_corpus)
    assert model.model_.decoder == "product"
    assert np.allclose(model.topic_word_.sum(1), 1.0, atol=1e-5)
    assert np.isfinite(model.perplexity(small_corpus))


@pytest.mark.parametrize("n_docs", [201, 202])
def test_a_last_batch_of_one_document_is_skipped_not_a_crash(n_docs: int, tmp_path) -> None:
    """Batch normalisation needs two documents: 201 documents in batches of 100 train on two full batches."""
    from types import SimpleNamespace

    from etm.corpus import Corpus, PreparedCorpus
    from etm.corpus.batching import InMemoryBatches, ShardedBatches

    rng = np.random.default_rng(0)
    counts = sp.random(n_docs, 300, density=0.05, random_state=rng, format="csr",
                       data_rvs=lambda n: rng.integers(1, 4, n).astype(np.float32))
    counts = sp.csr_matrix(counts + sp.eye(n_docs, 300, format="csr"))
    corpus = PreparedCorpus(train=Corpus(counts, [f"w{i}" for i in range(300)]), valid=None, test=None,
                            valid_halves=None, test_halves=None)
    steps = []
    train(ETM(5, 300, 16, 8, decoder="product"), corpus, TrainingConfig(epochs=2, batch_size=100),
          on_batch_end=lambda epoch, batch, loss: steps.append((epoch, batch)))
    n_steps = 2 if n_docs == 201 else 3
    assert steps == [(e, b) for e in (1, 2) for b in range(1, n_steps + 1)]
    assert InMemoryBatches(counts, torch.Generator()).n_steps(100) == n_steps
    shards = [SimpleNamespace(n_docs=150), SimpleNamespace(n_docs=n_docs - 150)]
    assert ShardedBatches(shards, seed=0).n_steps(100) == n_steps
    assert InMemoryBatches(counts, torch.Generator()).n_steps(100, world=2) == 2  # 1 or 2 left: < 2 a rank
