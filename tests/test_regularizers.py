"""ECRTM's embedding-clustering regulariser: Sinkhorn plan, loss and gradient against direct formulas; training."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from etm import ETM
from etm.regularizers import EmbeddingClustering, combine, sinkhorn, squared_distances
from etm.training import TrainingConfig, train


def _sinkhorn_numpy(cost: np.ndarray, alpha: float, iterations: int = 20000, columns: np.ndarray | None = None
                    ) -> np.ndarray:
    """Plain Sinkhorn in the log domain (no shift, no early stop): the reference plan."""
    n, m = cost.shape
    log_b = np.full(m, -np.log(m)) if columns is None else np.log(columns)
    log_k = -alpha * cost
    f, g = np.zeros(n), np.zeros(m)
    for _ in range(iterations):
        f = -np.log(n) - np.logaddexp.reduce(log_k + g[None, :], axis=1)
        g = log_b - np.logaddexp.reduce(log_k + f[:, None], axis=0)
    return np.exp(f[:, None] + log_k + g[None, :])


def test_sinkhorn_plan_has_uniform_marginals_and_matches_the_log_domain_reference() -> None:
    gen = torch.Generator().manual_seed(0)
    cost = squared_distances(torch.randn(5, 4, generator=gen), torch.randn(40, 4, generator=gen)).double()
    plan = sinkhorn(cost, alpha=2.0, max_iter=5000, tol=1e-12)
    np.testing.assert_allclose(plan.sum(1).numpy(), np.full(5, 1 / 5), atol=1e-9)
    np.testing.assert_allclose(plan.sum(0).numpy(), np.full(40, 1 / 40), atol=1e-9)
    np.testing.assert_allclose(plan.numpy(), _sinkhorn_numpy(cost.numpy(), 2.0), rtol=1e-6, atol=1e-12)
    far = sinkhorn(cost + 1000.0, alpha=2.0, max_iter=5000, tol=1e-12)  # a shifted cost: the same plan
    np.testing.assert_allclose(far.numpy(), plan.numpy(), atol=1e-12)


def test_a_warm_started_plan_is_the_same_plan_and_the_regulariser_keeps_its_scaling() -> None:
    """Training starts each step's Sinkhorn from the last step's scaling; the plan must not depend on it."""
    from etm.regularizers import load_state, reset_state, sinkhorn_from, state_of

    gen = torch.Generator().manual_seed(5)
    cost = squared_distances(torch.randn(6, 4, generator=gen), torch.randn(50, 4, generator=gen)).double()
    cold, scaling = sinkhorn_from(cost, None, alpha=2.0, max_iter=5000, tol=1e-12)
    moved = cost + 0.01 * torch.rand(cost.shape, generator=gen, dtype=torch.float64)  # the next step's cost
    for start in (scaling, 1e6 * scaling):  # its overall scale does not matter
        warm, _ = sinkhorn_from(moved, start, alpha=2.0, max_iter=5000, tol=1e-12)
        np.testing.assert_allclose(warm.numpy(), sinkhorn(moved, alpha=2.0, max_iter=5000, tol=1e-12).numpy(),
                                   rtol=1e-8, atol=1e-14)
    model = ETM(4, 30, 8, 5, enc_drop=0.0, similarity="cosine").double()
    reg = EmbeddingClustering(20.0)
    assert state_of(reg) == {}
    reg(model, 0.0, None, None, None)
    kept = state_of(reg)
    assert set(kept) == {"scaling"} and kept["scaling"].shape == (4,)
    reset_state(reg)
    assert state_of(reg) == {}
    load_state(combine(reg, lambda *a: None), {"0.scaling": kept["scaling"]})  # through a sum, by position
    torch.testing.assert_close(state_of(reg)["scaling"], kept["scaling"])


def test_with_word_mass_by_frequency_the_plan_moves_each_words_share_and_the_loss_follows() -> None:
    """``ecr_word_mass="sqrt-frequency"``: column marginals proportional to sqrt(count + 1)."""
    from etm.regularizers import word_mass

    counts = np.array([0, 3, 8, 15, 99, 0, 1, 24] * 5, dtype=float)
    mass = word_mass(counts, "sqrt-frequency")
    np.testing.assert_allclose(mass.numpy(), np.sqrt(counts + 1) / np.sqrt(counts + 1).sum())
    assert word_mass(counts, "uniform") is None
    with pytest.raises(ValueError, match="word mass must be 'uniform' or 'sqrt-frequency', got 'zipf'"):
        word_mass(counts, "zipf")
    torch.manual_seed(6)
    model = ETM(4, 40, 8, 5, enc_drop=0.0, similarity="cosine", temperature=0.5).double()
    reg = EmbeddingClustering(20.0, alpha=5.0, word_mass=mass, max_iter=5000, tol=1e-12)
    loss = reg(model, 0.0, None, None, None)
    a_hat = torch.nn.functional.normalize(model.alphas.weight.detach(), dim=1)
    r_hat = torch.nn.functional.normalize(model.rho.weight.detach(), dim=1)
    cost = (2.0 - 2.0 * a_hat @ r_hat.T).numpy()
    plan = _sinkhorn_numpy(cost, 5.0, columns=mass.numpy())
    np.testing.assert_allclose(plan.sum(0), mass.numpy(), rtol=1e-9)
    assert float(loss.detach()) == pytest.approx(20.0 * float((plan * cost).sum()), rel=1e-6)


def test_squared_distances_formula() -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 6, generator=gen, dtype=torch.float64), torch.randn(7, 6, generator=gen, dtype=torch.float64)
    direct = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    torch.testing.assert_close(squared_distances(x, y), direct)


def test_loss_and_gradient_are_the_weighted_transport_cost_with_the_plan_held_fixed() -> None:
    torch.manual_seed(2)
    model = ETM(4, 30, 8, 5, enc_drop=0.0).double()
    reg = EmbeddingClustering(250.0, alpha=5.0, max_iter=3000, tol=1e-10)
    loss = reg(model, 0.0, None, None, None)
    alphas, rho = model.alphas.weight.detach(), model.rho.weight.detach()
    plan = torch.from_numpy(_sinkhorn_numpy(squared_distances(alphas, rho).numpy(), 5.0))
    expected = 250.0 * (plan * squared_distances(alphas, rho)).sum()
    assert float(loss.detach()) == pytest.approx(float(expected), rel=1e-6)
    loss.backward()
    # d/d alpha_k of sum_v P_kv ||alpha_k - rho_v||^2 = 2 sum_v P_kv (alpha_k - rho_v)
    grad = 250.0 * 2.0 * (plan.sum(1, keepdim=True) * alphas - plan @ rho)
    torch.testing.assert_close(model.alphas.weight.grad, grad, rtol=1e-5, atol=1e-8)


def test_with_cosine_logits_the_embeddings_are_clustered_on_the_unit_sphere() -> None:
    """``similarity="cosine"``: the cost is 2 - 2 cos between normalised embeddings, whatever their lengths."""
    torch.manual_seed(3)
    model = ETM(4, 30, 8, 5, enc_drop=0.0, similarity="cosine", temperature=0.5).double()
    with torch.no_grad():  # lengths the decoder ignores must not move the plan or the loss
        model.rho.weight.mul_(torch.linspace(0.1, 10.0, 30, dtype=torch.float64)[:, None])
    reg = EmbeddingClustering(20.0, alpha=5.0, max_iter=3000, tol=1e-10)
    loss = reg(model, 0.0, None, None, None)
    alphas, rho = model.alphas.weight.detach(), model.rho.weight.detach()
    a_hat = alphas / alphas.norm(dim=1, keepdim=True)
    r_hat = rho / rho.norm(dim=1, keepdim=True)
    cost = (2.0 - 2.0 * a_hat @ r_hat.T).numpy()
    plan = torch.from_numpy(_sinkhorn_numpy(cost, 5.0))
    assert float(loss.detach()) == pytest.approx(20.0 * float((plan.numpy() * cost).sum()), rel=1e-6)
    loss.backward()
    # with the plan fixed: d/d alpha_k of -2 sum_v P_kv cos(alpha_k, rho_v), through the normalisation
    g_hat = -2.0 * 20.0 * (plan @ r_hat)  # gradient with respect to a_hat
    grad = (g_hat - (g_hat * a_hat).sum(1, keepdim=True) * a_hat) / alphas.norm(dim=1, keepdim=True)
    torch.testing.assert_close(model.alphas.weight.grad, grad, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_the_cost_read_off_the_steps_logits_equals_the_one_from_the_embeddings(similarity: str) -> None:
    """Training passes the step's logits (computed once); loss and gradients must not change."""
    torch.manual_seed(4)
    model = ETM(4, 30, 8, 5, enc_drop=0.0, similarity=similarity, temperature=0.5).double()
    reg = EmbeddingClustering(20.0, alpha=5.0, max_iter=3000, tol=1e-10)
    direct = reg(model, 0.0, None, None, None)
    direct.backward()
    grads = [p.grad.clone() for p in (model.alphas.weight, model.rho.weight)]
    model.zero_grad()
    reg.reset()  # the same cold start
    shared = reg(model, 0.0, None, None, None, logits=model._logits())
    shared.backward()
    assert float(shared.detach()) == pytest.approx(float(direct.detach()), rel=1e-9)
    for p, g in zip((model.alphas.weight, model.rho.weight), grads):
        torch.testing.assert_close(p.grad, g, rtol=1e-7, atol=1e-10)


def test_combine_passes_the_logits_only_to_a_regulariser_that_reads_them() -> None:
    from etm.regularizers import reads_logits

    seen = {}

    def old_style(*args):  # the documented five-argument signature
        seen["old"] = len(args)
        return torch.tensor(1.0)

    class Reader:
        reads_logits = True

        def __call__(self, *args, logits=None):
            seen["logits"] = logits
            return torch.tensor(2.0)

    both = combine(old_style, Reader())
    assert reads_logits(both) and not reads_logits(old_style) and not reads_logits(None)
    logits = torch.ones(3, 2)
    assert float(both(None, 0.0, None, None, None, logits=logits)) == 3.0
    assert seen["old"] == 5 and seen["logits"] is logits


def test_combine_adds_regularizers_and_skips_none() -> None:
    one = lambda *a: torch.tensor(1.0)  # noqa: E731
    two = lambda *a: torch.tensor(2.0)  # noqa: E731
    assert combine(None, None) is None and combine(None, one) is one
    assert float(combine(one, None, two)(None, 0.0, None, None, None)) == 3.0


def _fresh(corpus) -> ETM:
    torch.manual_seed(0)
    return ETM(8, len(corpus.vocabulary), 64, 32, enc_drop=0.1)


@pytest.mark.parametrize("mass", ["uniform", "sqrt-frequency"])
def test_training_with_the_regulariser_is_seeded_resumes_exactly_and_spreads_topics(small_corpus, tmp_path,
                                                                                     mass: str) -> None:
    from etm.regularizers import word_mass

    config = TrainingConfig(epochs=3, batch_size=500, lr=0.01, seed=7, checkpoint_every=1)
    totals = np.asarray(small_corpus.train.counts.sum(0)).ravel()
    reg = EmbeddingClustering(250.0, word_mass=word_mass(totals, mass))
    a = train(_fresh(small_corpus), small_corpus, config, regularizer=reg)
    b = train(_fresh(small_corpus), small_corpus, config, regularizer=reg)
    plain = train(_fresh(small_corpus), small_corpus, config)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert all(h["prior"] > 0 for h in a.history)  # the regulariser's epoch mean is recorded
    # its transport cost falls: topic embeddings move towards distinct word clusters
    assert a.history[-1]["prior"] < a.history[0]["prior"]
    assert [h["loss"] for h in a.history] != [h["loss"] for h in plain.history]

    def interrupt(epoch: int, batch: int, loss: float) -> None:
        if (epoch, batch) == (2, 2):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_fresh(small_corpus), small_corpus, config, regularizer=reg, checkpoint_dir=tmp_path,
              on_batch_end=interrupt)
    resumed = train(_fresh(small_corpus), small_corpus, config, regularizer=reg, checkpoint_dir=tmp_path, resume=True)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in a.history]


def test_topic_model_option_reaches_training(small_corpus) -> None:
    from etm import TopicModel

    small = dict(hidden_size=32, embedding_size=16, epochs=2, batch_size=200, lr=0.01, device="cpu")
    m = TopicModel(5, ecr_weight=100.0, **small).fit(small_corpus.train.counts[:400],
                                                     vocabulary=small_corpus.vocabulary)
    assert all("prior" in h for h in m.history_) and m.ecr_weight_ == 100.0
    off = TopicModel(5, ecr_weight=0.0, **small).fit(small_corpus.train.counts[:400],
                                                     vocabulary=small_corpus.vocabulary)
    assert all("prior" not in h for h in off.history_)


def test_the_default_weight_follows_the_decoder_the_seeds_and_the_document_length(small_corpus) -> None:
    """None: with the product decoder, unseeded, the mean training-document length / 8; else off."""
    from etm import TopicModel

    small = dict(hidden_size=32, embedding_size=16, epochs=1, batch_size=500, lr=0.01, device="cpu")
    product = TopicModel(20, **small).fit(small_corpus)  # its own split: training documents are .train
    mean_length = small_corpus.train.counts.sum() / small_corpus.train.n_docs
    assert product.ecr_weight is None and product.ecr_weight_ == pytest.approx(mean_length / 8)
    assert 8 < product.ecr_weight_ < 12  # the authors' 20NG: 82 tokens a message
    assert all(h["prior"] > 0 for h in product.history_)
    mixture = TopicModel(20, decoder="mixture", **small).fit(small_corpus)
    seeded = TopicModel(20, seed_topics={"space": ["space", "nasa"]}, **small).fit(small_corpus)
    assert mixture.ecr_weight_ == 0.0 and all("prior" not in h for h in mixture.history_)
    assert seeded.ecr_weight_ == 0.0  # seed words keep a seeded model's topics apart (its "prior" is theirs)
    given = TopicModel(5, ecr_weight=3.0, **small).fit(small_corpus)
    assert given.ecr_weight_ == 3.0 and all(h["prior"] > 0 for h in given.history_)


def test_the_word_mass_option_reaches_the_regulariser(small_corpus, monkeypatch) -> None:
    """``ecr_word_mass`` (default "sqrt-frequency") decides the plan's column marginals in training."""
    import etm.estimator as estimator_module
    from etm import TopicModel
    from etm.regularizers import word_mass

    made = []
    real = estimator_module.EmbeddingClustering

    def spy(*args, **kwargs):
        made.append(kwargs.get("word_mass"))
        return real(*args, **kwargs)

    monkeypatch.setattr(estimator_module, "EmbeddingClustering", spy)
    small = dict(hidden_size=32, embedding_size=16, epochs=1, batch_size=500, lr=0.01, device="cpu")
    TopicModel(10, **small).fit(small_corpus)
    TopicModel(10, ecr_word_mass="uniform", **small).fit(small_corpus)
    expected = word_mass(np.asarray(small_corpus.train.counts.sum(0)).ravel(), "sqrt-frequency")
    torch.testing.assert_close(made[0], expected)
    assert made[1] is None


def test_the_clustering_term_does_not_make_the_product_decoder_compute_its_topics() -> None:
    """The (K, V) topic distributions are computed in a step only for a regulariser that reads them."""
    from etm.regularizers import reads_topics

    reg = EmbeddingClustering(10.0)
    seed_like = lambda *a: None  # noqa: E731  (a regulariser that does not say: assumed to read them)
    assert not reads_topics(reg) and not reads_topics(None) and reads_topics(seed_like)
    assert reads_topics(combine(reg, seed_like)) and not reads_topics(combine(reg, EmbeddingClustering(1.0)))
