"""The ETM module: the authors' contract, the sparse path's exactness, errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from etm import ETM
from etm.model import ACTIVATIONS, SparseBatch


def _random_counts(n_docs: int, n_words: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_docs, n_words, density=density, format="csr", random_state=rng, dtype=np.float64)
    m.data = np.ceil(m.data * 5).astype(np.float32)
    m = m.astype(np.float32)
    # every document needs at least one word
    empty = np.flatnonzero(np.diff(m.indptr) == 0)
    if empty.size:
        m = m.tolil()
        for r in empty:
            m[r, rng.integers(n_words)] = 1.0
        m = m.tocsr()
    return m


def _model(seed: int = 0, **kwargs: object) -> ETM:
    torch.manual_seed(seed)
    args = dict(num_topics=7, vocab_size=60, t_hidden_size=16, rho_size=8, enc_drop=0.0)
    args.update(kwargs)
    return ETM(**args).double()


@pytest.mark.parametrize("fmt", ["csr", "coo", "csc"])
def test_sparse_path_matches_dense_formula_loss_and_gradients(fmt: str) -> None:
    counts = getattr(_random_counts(13, 60, 0.15, seed=1), f"to{fmt}")()
    dense = torch.tensor(counts.toarray(), dtype=torch.float64)
    norm_dense = dense / dense.sum(1, keepdim=True)
    sparse = SparseBatch.from_scipy(counts)
    sparse = sparse.with_values(sparse.values.double())

    m = _model().train()
    # the same noise in both passes
    torch.manual_seed(5)
    recon_d, kl_d = m(dense, norm_dense)
    (recon_d + kl_d).backward()
    grads_d = {n: p.grad.clone() for n, p in m.named_parameters()}
    m.zero_grad()
    torch.manual_seed(5)
    recon_s, kl_s = m(sparse, sparse.normalized())
    (recon_s + kl_s).backward()

    # the dense formula, written out as in the authors' code
    with torch.no_grad():
        torch.manual_seed(5)
        theta, _ = m.get_theta(norm_dense)
        reference = -(torch.log(theta @ m.get_beta() + 1e-6) * dense).sum(1).mean()
    assert torch.allclose(recon_d, reference, atol=1e-5, rtol=0)
    assert torch.allclose(recon_s, recon_d, atol=1e-5, rtol=0)
    assert torch.allclose(kl_s, kl_d, atol=1e-5, rtol=0)
    for name, p in m.named_parameters():
        assert torch.allclose(p.grad, grads_d[name], atol=1e-5, rtol=1e-5), name


def test_forward_contract_matches_authors() -> None:
    m = _model()
    counts = torch.tensor(_random_counts(5, 60, 0.2, seed=2).toarray(), dtype=torch.float64)
    recon, kld = m(counts, counts / counts.sum(1, keepdim=True), aggregate=False)
    assert recon.shape == (5,)
    assert kld.ndim == 0
    theta, _ = m.get_theta(counts / counts.sum(1, keepdim=True))
    recon2, kld2 = m(counts, None, theta=theta)
    assert kld2 is None and recon2.ndim == 0
    beta = m.get_beta()
    assert beta.shape == (7, 60)
    assert torch.allclose(beta.sum(1), torch.ones(7, dtype=beta.dtype))
    assert m.decode(theta, beta).shape == (5, 60)
    for name in ("q_theta", "mu_q_theta", "logsigma_q_theta", "alphas", "rho", "t_drop", "enc_drop"):
        assert hasattr(m, name)
    assert m.rho.weight.shape == (60, 8)
    assert m.alphas.weight.shape == (7, 8)
    assert m.q_theta[0].weight.shape == (16, 60)  # nn.Linear layout


def test_eval_mode_theta_is_deterministic_mean() -> None:
    m = _model().eval()
    x = torch.rand(4, 60, dtype=torch.float64)
    a, _ = m.get_theta(x)
    b, _ = m.get_theta(x)
    mu, _, _ = m.encode(x)
    assert torch.equal(a, b)
    assert torch.allclose(a, torch.softmax(mu, -1))


def test_state_dict_uses_nn_linear_layout_and_round_trips() -> None:
    m = _model()
    state = m.state_dict()
    assert "q_theta.0.weight" in state and state["q_theta.0.weight"].shape == (16, 60)
    assert "q_theta.0.weight_t" not in state
    m2 = _model(seed=99)
    m2.load_state_dict(state)
    x = torch.rand(3, 60, dtype=torch.float64)
    assert torch.allclose(m.eval().get_theta(x)[0], m2.eval().get_theta(x)[0])


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_every_authors_activation_runs(act: str) -> None:
    m = _model(theta_act=act)
    x = SparseBatch.from_scipy(_random_counts(4, 60, 0.2, seed=3))
    x = x.with_values(x.values.double())
    recon, kld = m(x, x.normalized())
    (recon + kld).backward()
    assert torch.isfinite(recon)


def test_unknown_activation_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unknown theta_act 'swish'; choose one of"):
        ETM(3, 10, 8, 4, theta_act="swish")


def test_fixed_embeddings_are_a_buffer_that_moves_and_is_saved() -> None:
    emb = torch.randn(60, 8)
    m = ETM.from_pretrained(emb, num_topics=5, t_hidden_size=16)
    assert "rho.weight" in dict(m.named_buffers())
    assert "rho.weight" not in dict(m.named_parameters())
    assert "rho.weight" in m.state_dict()
    m = m.double()
    assert m.rho.weight.dtype == torch.float64
    x = torch.rand(3, 60, dtype=torch.float64)
    recon, kld = m(x, x / x.sum(1, keepdim=True))
    (recon + kld).backward()
    assert torch.allclose(m.rho.weight.float(), emb)


def test_embedding_size_aliases() -> None:
    assert ETM(3, 10, 8, rho_size=6, emsize=6).rho.weight.shape == (10, 6)
    with pytest.raises(ValueError, match=r"rho_size=6 and emsize=5 differ"):
        ETM(3, 10, 8, rho_size=6, emsize=5)
    with pytest.raises(ValueError, match=r"embeddings must have shape \(vocab_size=10, E\)"):
        ETM(3, 10, 8, embeddings=torch.randn(9, 4), train_embeddings=False)
    with pytest.raises(ValueError, match=r"train_embeddings=False needs pretrained"):
        ETM(3, 10, 8, train_embeddings=False)


def test_background_bias_shifts_beta_and_keeps_the_sparse_path_exact() -> None:
    counts = _random_counts(9, 60, 0.2, seed=4)
    from etm.model import log_word_frequency

    bg = log_word_frequency(counts)
    assert bg.shape == (60,) and torch.isfinite(bg).all()
    torch.manual_seed(0)
    m = ETM(7, 60, 16, 8, enc_drop=0.0, background=bg).double()
    assert "background" in m.state_dict() and "background" not in dict(m.named_parameters())
    beta = m.get_beta()
    assert torch.allclose(beta.sum(1), torch.ones(7, dtype=beta.dtype))
    with torch.no_grad():
        m.alphas.weight.zero_()  # no topic signal left: every topic is the background distribution
    expected = torch.softmax(bg.double(), 0)
    assert torch.allclose(m.get_beta(), expected.expand(7, -1), atol=1e-12)
    dense = torch.tensor(counts.toarray(), dtype=torch.float64)
    sparse = SparseBatch.from_scipy(counts)
    sparse = sparse.with_values(sparse.values.double())
    m.eval()
    a, _ = m(dense, dense / dense.sum(1, keepdim=True))
    b, _ = m(sparse, sparse.normalized())
    assert torch.allclose(a, b, atol=1e-9)
    with pytest.raises(ValueError, match=r"background must have shape \(vocab_size=60,\), got \(59,\)"):
        ETM(7, 60, 16, 8, background=bg[:59])


def test_row_sparse_first_layer_gradient_equals_the_dense_one() -> None:
    """``sparse_grad`` gives the same first-layer gradient, holding only the batch's words."""
    counts = sp.random(30, 120, density=0.05, format="csr", random_state=3)
    counts.data = np.ceil(counts.data * 4)
    batch = SparseBatch.from_scipy(counts)
    grads = []
    for sparse in (False, True):
        torch.manual_seed(0)
        model = ETM(4, 120, 16, 8, enc_drop=0.0)
        model.q_theta[0].sparse_grad = sparse
        recon, kld = model(batch, batch.normalized())
        (recon + kld).backward()
        grads.append(model.q_theta[0].weight_t.grad)
    dense, row_sparse = grads
    assert row_sparse.is_sparse and not dense.is_sparse
    present = np.unique(counts.indices)
    assert row_sparse.coalesce().indices()[0].tolist() == present.tolist()
    torch.testing.assert_close(row_sparse.to_dense(), dense, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("vocab", [60, 5_000])  # 5,000 words takes the blocked backward of rho's gradient
@pytest.mark.parametrize("background", [False, True])
def test_beta_and_its_gradients_equal_the_plain_softmax_formula(vocab: int, background: bool) -> None:
    torch.manual_seed(3)
    bg = torch.randn(vocab) if background else None
    m = ETM(num_topics=5, vocab_size=vocab, t_hidden_size=8, rho_size=6, enc_drop=0.0, background=bg).double()
    weights = torch.rand(5, vocab, dtype=torch.float64)

    (m.get_beta() * weights).sum().backward()
    ours = [m.get_beta().detach(), m.rho.weight.grad.clone(), m.alphas.weight.grad.clone()]

    rho = m.rho.weight.detach().clone().requires_grad_()
    alphas = m.alphas.weight.detach().clone().requires_grad_()
    logits = rho @ alphas.t() + (m.background.unsqueeze(1) if background else 0.0)
    beta = torch.softmax(logits, dim=0).t()
    (beta * weights).sum().backward()
    for got, want in zip(ours, [beta.detach(), rho.grad, alphas.grad]):
        assert torch.allclose(got, want, atol=1e-12, rtol=1e-9)


@pytest.mark.parametrize("background", [False, True])
def test_cosine_similarity_is_the_cosine_over_temperature_and_ignores_lengths(background: bool) -> None:
    torch.manual_seed(5)
    bg = torch.randn(80) if background else None
    m = ETM(4, 80, 8, 6, enc_drop=0.0, background=bg, similarity="cosine", temperature=0.2).double()
    weights = torch.rand(4, 80, dtype=torch.float64)
    (m.get_beta() * weights).sum().backward()
    ours = [m.get_beta().detach(), m.rho.weight.grad.clone(), m.alphas.weight.grad.clone()]

    rho = m.rho.weight.detach().clone().requires_grad_()
    alphas = m.alphas.weight.detach().clone().requires_grad_()
    cos = torch.nn.functional.cosine_similarity(rho.unsqueeze(1), alphas.unsqueeze(0), dim=2)  # (V, K)
    logits = cos / 0.2 + (m.background.unsqueeze(1) if background else 0.0)
    beta = torch.softmax(logits, dim=0).t()
    (beta * weights).sum().backward()
    for got, want in zip(ours, [beta.detach(), rho.grad, alphas.grad]):
        assert torch.allclose(got, want, atol=1e-10, rtol=1e-8)

    with torch.no_grad():  # a word's embedding length no longer matters, only its direction
        before = m.get_beta()
        m.rho.weight[:40] *= 7.0
        m.alphas.weight *= 0.3
        assert torch.allclose(m.get_beta(), before, atol=1e-12)
    logit_range = (1.0 / 0.2) * 2
    lo, hi = torch.log(before).amin(1), torch.log(before).amax(1)
    if not background:
        assert ((hi - lo) <= logit_range + 1e-9).all()  # the temperature bounds how peaked a topic can be
    assert "similarity='cosine', temperature=0.2" in repr(m)


def test_similarity_and_temperature_are_checked() -> None:
    with pytest.raises(ValueError, match=r"unknown similarity 'euclid'; choose one of \['dot', 'cosine'\]"):
        ETM(3, 10, 8, similarity="euclid")
    with pytest.raises(ValueError, match=r"temperature must be a positive number, got 0"):
        ETM(3, 10, 8, similarity="cosine", temperature=0)


def test_beta_is_stable_for_large_logits_and_column_max_is_exact() -> None:
    from etm.model import _column_max

    for rows in (1, 2, 63, 64, 65, 129, 1_001, 4_097):
        x = torch.randn(rows, 3) * 100
        assert torch.equal(_column_max(x), x.amax(dim=0)), rows
    m = ETM(num_topics=3, vocab_size=50, t_hidden_size=4, rho_size=4, enc_drop=0.0)
    with torch.no_grad():
        m.alphas.weight.mul_(1e4)  # logits in the thousands: a softmax without the shift overflows
    beta = m.get_beta()
    assert torch.isfinite(beta).all() and torch.allclose(beta.sum(1), torch.ones(3))


def test_a_subclass_that_overrides_get_beta_is_used_by_the_loss() -> None:
    class Uniform(ETM):
        def get_beta(self) -> torch.Tensor:
            return torch.full((self.num_topics, self.vocab_size), 1.0 / self.vocab_size, dtype=torch.float64)

    torch.manual_seed(0)
    m = Uniform(num_topics=4, vocab_size=60, t_hidden_size=8, rho_size=6, enc_drop=0.0).double().eval()
    counts = _random_counts(6, 60, 0.2, seed=4)
    batch = SparseBatch.from_scipy(counts)
    batch = batch.with_values(batch.values.double())
    recon, _ = m(batch, batch.normalized(), aggregate=False)
    expected = torch.tensor(np.asarray(counts.sum(1)).ravel(), dtype=torch.float64) * -np.log(1 / 60 + 1e-6)
    assert torch.allclose(recon, expected)


def test_a_training_step_computes_logits_only_for_whom_reads_them() -> None:
    """A subclass with its own get_beta does not pay for the (V, K) logits, unless a regularizer reads them."""
    from etm.training.loop import _TrainingStep

    calls = []

    class Uniform(ETM):
        def get_beta(self) -> torch.Tensor:
            return torch.full((self.num_topics, self.vocab_size), 1.0 / self.vocab_size)

        def _logits(self) -> torch.Tensor:
            calls.append(type(self).__name__)
            return super()._logits()

    class Counted(ETM):
        def _logits(self) -> torch.Tensor:
            calls.append(type(self).__name__)
            return super()._logits()

    batch = SparseBatch.from_scipy(_random_counts(6, 60, 0.2, seed=4))
    for cls, reads, expected in ((Uniform, False, []), (Uniform, True, ["Uniform"]), (Counted, False, ["Counted"])):
        calls.clear()
        torch.manual_seed(0)
        model = cls(num_topics=4, vocab_size=60, t_hidden_size=8, rho_size=6, enc_drop=0.0)
        recon, _, _, _, logits = _TrainingStep(model, topics=False, logits=reads)(batch, batch.normalized())
        assert calls == expected and torch.isfinite(recon) and (logits is not None) == bool(expected)
