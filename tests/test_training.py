"""Training loop: determinism, validation-based selection, early stopping, NaN, Ctrl-C and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from etm import ETM
from etm.persistence import load_model
from etm.training import TrainingConfig, TrainingDivergedError, evaluate_completion, infer_theta, train
from etm.training.checkpoint import read_checkpoint as load_checkpoint


def _fresh(corpus, seed: int = 0) -> ETM:
    torch.manual_seed(seed)
    return ETM(8, len(corpus.vocabulary), 64, 32, enc_drop=0.1)


def _cfg(**kw) -> TrainingConfig:
    base = dict(epochs=3, batch_size=500, lr=0.01, seed=7, checkpoint_every=1)
    base.update(kw)
    return TrainingConfig(**base)


def test_same_seed_same_numbers_on_cpu(small_corpus) -> None:
    a = train(_fresh(small_corpus), small_corpus, _cfg())
    b = train(_fresh(small_corpus), small_corpus, _cfg())
    c = train(_fresh(small_corpus), small_corpus, _cfg(seed=8))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert torch.equal(a.model.get_beta(), b.model.get_beta())
    assert [h["loss"] for h in a.history] != [h["loss"] for h in c.history]


def test_training_does_not_touch_global_rng(small_corpus) -> None:
    model = _fresh(small_corpus)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, small_corpus, _cfg(epochs=1))
    assert torch.equal(torch.rand(3), expected)


def test_loss_decreases_and_best_epoch_is_chosen_on_validation(small_corpus) -> None:
    result = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4))
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    ppls = [h["valid_perplexity"] for h in result.history]
    assert result.best_epoch == int(np.argmin(ppls)) + 1
    assert result.best_valid_perplexity == pytest.approx(min(ppls))
    again = evaluate_completion(result.model, *small_corpus.valid_halves)
    assert again.perplexity_per_document == pytest.approx(result.best_valid_perplexity, rel=1e-5)


def test_early_stopping_with_patience(small_corpus) -> None:
    # a learning rate too small to change anything: no epoch beats the first
    result = train(_fresh(small_corpus), small_corpus, _cfg(epochs=10, lr=1e-12, patience=2))
    assert result.stopped_early
    assert len(result.history) == 3
    assert result.best_epoch == 1


def test_lr_annealing_follows_nonmono_rule(small_corpus) -> None:
    result = train(_fresh(small_corpus), small_corpus, _cfg(epochs=5, lr=1e-12, anneal_lr=True, nonmono=2))
    lrs = [h["lr"] for h in result.history]
    # epochs 1..5 never improve on epoch 1, so from epoch 3 on lr is divided by 4 each epoch
    assert lrs[0] == lrs[1] == lrs[2] == 1e-12
    assert lrs[3] == pytest.approx(1e-12 / 4) and lrs[4] == pytest.approx(1e-12 / 16)


def test_nan_stops_names_epoch_and_batch_and_keeps_last_checkpoint(small_corpus, tmp_path) -> None:
    model = _fresh(small_corpus)

    def poison(epoch: int, batch: int, loss: float) -> None:
        if epoch == 2 and batch == 1:
            with torch.no_grad():
                model.alphas.weight.fill_(float("nan"))

    with pytest.raises(TrainingDivergedError, match=r"loss became nan at epoch 2, batch 2 of 3; the last good "
                                                    r"checkpoint is kept in"):
        train(model, small_corpus, _cfg(), checkpoint_dir=tmp_path, on_batch_end=poison)
    trainer = json.loads((tmp_path / "last" / "trainer.json").read_text())
    assert trainer["epochs_completed"] == 1
    good, _, _ = load_model(tmp_path / "last")  # loads: every tensor is finite
    assert torch.isfinite(good.get_beta()).all()


def test_ctrl_c_leaves_a_resumable_checkpoint(small_corpus, tmp_path) -> None:
    def interrupt(epoch: int, batch: int, loss: float) -> None:
        if epoch == 2 and batch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_fresh(small_corpus), small_corpus, _cfg(), checkpoint_dir=tmp_path, on_batch_end=interrupt)
    _, _, _, trainer, _ = load_checkpoint(tmp_path / "last")
    assert trainer["epochs_completed"] == 1
    resumed = train(_fresh(small_corpus, seed=1), small_corpus, _cfg(), checkpoint_dir=tmp_path, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]


def test_resume_continues_exactly(small_corpus, tmp_path) -> None:
    straight = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4))
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=2), checkpoint_dir=tmp_path)
    resumed = train(_fresh(small_corpus, seed=5), small_corpus, _cfg(epochs=4), checkpoint_dir=tmp_path, resume=True)
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in straight.history], rel=1e-6)
    assert torch.allclose(resumed.model.get_beta(), straight.model.get_beta(), atol=1e-6)


def test_resume_refuses_a_different_vocabulary(small_corpus, tmp_path) -> None:
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=1), checkpoint_dir=tmp_path)
    from etm.corpus import Corpus, PreparedCorpus

    vocab = list(small_corpus.vocabulary)
    vocab[0], vocab[1] = vocab[1], vocab[0]
    other = PreparedCorpus.from_splits(Corpus(small_corpus.train.counts, vocab), None, None)
    with pytest.raises(ValueError, match="different vocabulary"):
        train(_fresh(small_corpus), other, _cfg(epochs=2), checkpoint_dir=tmp_path, resume=True)


@pytest.mark.parametrize("name", ["adam", "adagrad", "adadelta", "rmsprop", "asgd", "sgd"])
def test_every_authors_optimizer_trains(small_corpus, name: str) -> None:
    result = train(_fresh(small_corpus), small_corpus, _cfg(epochs=1, optimizer=name, clip=1.0))
    assert np.isfinite(result.history[0]["loss"])


def test_config_errors() -> None:
    with pytest.raises(ValueError, match=r"optimizer='lbfgs' is not one of \['adam'"):
        TrainingConfig(optimizer="lbfgs").validate()
    with pytest.raises(ValueError, match=r"batch_size must be >= 1, got 0"):
        TrainingConfig(batch_size=0).validate()


def test_infer_theta_rows_are_distributions(small_corpus) -> None:
    theta = infer_theta(_fresh(small_corpus), small_corpus.test.counts)
    assert theta.shape == (300, 8)
    assert np.allclose(theta.sum(1), 1.0, atol=1e-5)


def test_weight_averaging_is_used_and_resumes_exactly(small_corpus, tmp_path) -> None:
    plain = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3))
    straight = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3, ema_decay=0.9))
    assert not torch.equal(plain.model.get_beta(), straight.model.get_beta())
    # the same optimisation trajectory: training losses agree, validated weights differ
    assert [h["loss"] for h in plain.history] == [h["loss"] for h in straight.history]
    assert plain.history[-1]["valid_perplexity"] != straight.history[-1]["valid_perplexity"]
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=2, ema_decay=0.9), checkpoint_dir=tmp_path)
    resumed = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3, ema_decay=0.9), checkpoint_dir=tmp_path,
                    resume=True)
    assert resumed.history[-1]["valid_perplexity"] == pytest.approx(straight.history[-1]["valid_perplexity"],
                                                                    rel=1e-6)


def test_cosine_schedule_and_kl_warmup(small_corpus) -> None:
    result = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3, lr_schedule="cosine", kl_warmup=2))
    lrs = [h["lr"] for h in result.history]
    assert 0.01 > lrs[0] > lrs[1] > lrs[2] > 0
    with pytest.raises(ValueError, match="anneal_lr and lr_schedule='cosine' both set the learning rate"):
        _cfg(lr_schedule="cosine", anneal_lr=True).validate()
    with pytest.raises(ValueError, match=r"lr_schedule='step' is not one of \['constant', 'cosine'\]"):
        _cfg(lr_schedule="step").validate()


def test_kl_weight_scales_the_kl_term(small_corpus) -> None:
    full = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4))
    weak = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4, kl_weight=0.05))
    for h in weak.history:
        assert h["loss"] == pytest.approx(h["reconstruction"] + 0.05 * h["kl"], rel=1e-5)
    # a weaker pull toward the prior lets the posterior move further from it
    assert weak.history[-1]["kl"] > full.history[-1]["kl"]
    with pytest.raises(ValueError, match=r"kl_weight must be > 0, got 0.0"):
        _cfg(kl_weight=0.0).validate()


# -- lazy updates ---------------------------------------------------------------------
def _row_sparse(rows: torch.Tensor, values: torch.Tensor, n_rows: int) -> torch.Tensor:
    return torch.sparse_coo_tensor(rows.unsqueeze(0), values, (n_rows, values.shape[1]), check_invariants=True)


def test_row_sparse_adam_matches_sparse_adam_and_adam() -> None:
    from etm.training import RowSparseAdam

    gen = torch.Generator().manual_seed(0)
    start = torch.randn(40, 6, generator=gen)
    ours, ref = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_ours, opt_ref = RowSparseAdam([ours], lr=0.01), torch.optim.SparseAdam([ref], lr=0.01)
    for _ in range(6):
        rows = torch.unique(torch.randint(0, 40, (15,), generator=gen))
        grad = _row_sparse(rows, torch.randn(len(rows), 6, generator=gen), 40).coalesce()
        ours.grad, ref.grad = grad.clone(), grad.clone()
        opt_ours.step()
        opt_ref.step()
    torch.testing.assert_close(ours.detach(), ref.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours.detach(), start)
    # dense gradients: exactly Adam, weight decay included
    a, b = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_a, opt_b = RowSparseAdam([a], lr=0.01, weight_decay=0.1), torch.optim.Adam([b], lr=0.01, weight_decay=0.1)
    for _ in range(4):
        g = torch.randn(40, 6, generator=gen)
        a.grad, b.grad = g.clone(), g.clone()
        opt_a.step()
        opt_b.step()
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)


def test_lazy_updates_leave_absent_words_rows_untouched(small_corpus) -> None:
    """After one step, first-layer rows of words absent from the batch are exactly as initialised."""
    model = _fresh(small_corpus)
    before = model.q_theta[0].weight_t.detach().clone()
    config = _cfg(epochs=1, batch_size=len(small_corpus.train.counts.indptr) - 1, lazy_updates=True)
    train(model, small_corpus, config)
    seen = np.asarray(small_corpus.train.counts.sum(axis=0)).ravel() > 0
    after = model.q_theta[0].weight_t.detach()
    assert torch.equal(after[~torch.from_numpy(seen)], before[~torch.from_numpy(seen)])
    assert not torch.equal(after[torch.from_numpy(seen)], before[torch.from_numpy(seen)])
    assert model.q_theta[0].sparse_grad is False  # the model is left as an ordinary module


def test_lazy_updates_train_comparably_and_resume_exactly(small_corpus, tmp_path) -> None:
    exact = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4))
    lazy = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4, lazy_updates=True))
    assert lazy.history[-1]["loss"] < lazy.history[0]["loss"]
    assert lazy.best_valid_perplexity == pytest.approx(exact.best_valid_perplexity, rel=0.1)
    assert lazy.history[-1]["loss"] != exact.history[-1]["loss"]  # a different optimizer, not the same path
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=2, lazy_updates=True), checkpoint_dir=tmp_path)
    resumed = train(_fresh(small_corpus, seed=5), small_corpus, _cfg(epochs=4, lazy_updates=True),
                    checkpoint_dir=tmp_path, resume=True)
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in lazy.history], rel=1e-6)
    assert torch.allclose(resumed.model.get_beta(), lazy.model.get_beta(), atol=1e-6)


def test_lazy_updates_need_adam() -> None:
    with pytest.raises(ValueError, match="lazy Adam"):
        TrainingConfig(optimizer="sgd", lazy_updates=True).validate()


# -- encoder token drop ---------------------------------------------------------------
def test_thinning_hides_tokens_from_the_encoder_only(small_corpus) -> None:
    from etm.model import SparseBatch
    from etm.training.loop import _thinned

    batch = SparseBatch.from_scipy(small_corpus.train.counts[:500])
    torch.manual_seed(0)
    thin = _thinned(batch, 0.5)
    assert torch.equal(thin.indices, batch.indices) and torch.equal(thin.offsets, batch.offsets)
    kept = thin.values
    assert torch.equal(kept, kept.round()) and bool((kept >= 0).all()) and bool((kept <= batch.values).all())
    assert bool((thin.row_sums() > 0).all())  # no document left without a word
    share = float(kept.sum() / batch.values.sum())
    assert 0.47 < share < 0.53  # binomial thinning keeps half of ~60k tokens
    torch.manual_seed(0)
    assert torch.equal(_thinned(batch, 0.5).values, kept)
    one_token = SparseBatch.from_scipy(small_corpus.train.counts[:500].sign()[:, :1].tocsr() + 0)
    keep_all = _thinned(one_token, 0.99)
    assert bool((keep_all.row_sums() == one_token.row_sums()).all())


def test_encoder_token_drop_thins_the_encoder_input_not_the_likelihood(small_corpus, monkeypatch) -> None:
    model = _fresh(small_corpus)
    seen: dict[str, list[float]] = {"encoder": [], "likelihood": []}
    encode, likelihood = model.encode, ETM.reconstruction_loss

    def spy_encode(inp):
        seen["encoder"].append(float(inp.row_sums().sum()))
        return encode(inp)

    def spy_likelihood(bows, theta, beta):
        seen["likelihood"].append(float(bows.row_sums().sum()))
        return likelihood(bows, theta, beta)

    monkeypatch.setattr(model, "encode", spy_encode)
    monkeypatch.setattr(ETM, "reconstruction_loss", staticmethod(spy_likelihood))
    train(model, small_corpus, _cfg(epochs=1, batch_size=1500, bow_norm=False, encoder_token_drop=0.5))
    tokens = float(small_corpus.train.counts.sum())
    assert seen["likelihood"][0] == pytest.approx(tokens)
    assert 0.45 * tokens < seen["encoder"][0] < 0.55 * tokens


def test_encoder_token_drop_is_seeded_resumes_exactly_and_is_validated(small_corpus, tmp_path) -> None:
    a = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3, encoder_token_drop=0.5))
    b = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3, encoder_token_drop=0.5))
    plain = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3))
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert [h["loss"] for h in a.history] != [h["loss"] for h in plain.history]
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=2, encoder_token_drop=0.5), checkpoint_dir=tmp_path)
    resumed = train(_fresh(small_corpus, seed=5), small_corpus, _cfg(epochs=3, encoder_token_drop=0.5),
                    checkpoint_dir=tmp_path, resume=True)
    assert [h["loss"] for h in resumed.history] == pytest.approx([h["loss"] for h in a.history], rel=1e-6)
    with pytest.raises(ValueError, match=r"encoder_token_drop must be in \[0, 1\), got 1.0"):
        _cfg(encoder_token_drop=1.0).validate()
