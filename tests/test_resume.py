"""Resume: exact after Ctrl-C at any step, honest about changed settings, checkpoints written as one unit."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch

from etm import ETM
from etm._io import commit_files, recover_directory, replace_directory, staging_directory
from etm.persistence import load_model, save_model
from etm.training import TrainingConfig, train
from etm.training.checkpoint import checkpoint_progress, read_checkpoint


def _fresh(corpus, seed: int = 0, topics: int = 8) -> ETM:
    torch.manual_seed(seed)
    return ETM(topics, len(corpus.vocabulary), 64, 32, enc_drop=0.1)


def _cfg(**kw) -> TrainingConfig:
    base = dict(epochs=3, batch_size=500, lr=0.01, seed=7, checkpoint_every=1)
    base.update(kw)
    return TrainingConfig(**base)


def _without_time(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def _same_weights(a: ETM, b: ETM) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("stop_at", [(1, 1), (2, 2), (3, 3)])
def test_ctrl_c_mid_epoch_then_resume_is_bit_exact(small_corpus, tmp_path, stop_at) -> None:
    """A KeyboardInterrupt after any step checkpoints that step; resuming reproduces the straight run exactly."""
    straight = train(_fresh(small_corpus), small_corpus, _cfg(encoder_token_drop=0.3, ema_decay=0.5))

    def interrupt(epoch: int, batch: int, loss: float) -> None:
        if (epoch, batch) == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(_fresh(small_corpus), small_corpus, _cfg(encoder_token_drop=0.3, ema_decay=0.5),
              checkpoint_dir=tmp_path, on_batch_end=interrupt)
    progress = checkpoint_progress(tmp_path / "last")
    assert (progress["epochs_completed"], progress["steps_completed"]) == (stop_at[0] - 1, stop_at[1])
    resumed = train(_fresh(small_corpus, seed=3), small_corpus, _cfg(encoder_token_drop=0.3, ema_decay=0.5),
                    checkpoint_dir=tmp_path, resume=True)
    assert _without_time(resumed.history) == _without_time(straight.history)
    assert resumed.best_epoch == straight.best_epoch
    assert _same_weights(resumed.model, straight.model)


def test_real_sigint_finishes_the_step_then_checkpoints_it(small_corpus, tmp_path) -> None:
    """SIGINT arriving mid-step is deferred to the step's end: the checkpoint holds a completed step."""
    straight = train(_fresh(small_corpus), small_corpus, _cfg())

    def signal_self(epoch: int, batch: int, loss: float) -> None:
        if (epoch, batch) == (2, 1):
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        train(_fresh(small_corpus), small_corpus, _cfg(), checkpoint_dir=tmp_path, on_batch_end=signal_self)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    progress = checkpoint_progress(tmp_path / "last")
    assert (progress["epochs_completed"], progress["steps_completed"]) == (1, 1)
    resumed = train(_fresh(small_corpus), small_corpus, _cfg(), checkpoint_dir=tmp_path, resume=True)
    assert _without_time(resumed.history) == _without_time(straight.history)
    assert _same_weights(resumed.model, straight.model)


def test_sigint_during_set_up_stops_before_the_first_step_and_keeps_the_checkpoint(small_corpus, tmp_path) -> None:
    """Ctrl-C while train() sets up (here: while resuming) is a request, never lost: no step runs.

    The signal lands inside a finaliser, where Python would print and drop its KeyboardInterrupt (as it does in
    an import's clean-up callback, which once let a Ctrl-C'd run train to its end).
    """
    straight = train(_fresh(small_corpus), small_corpus, _cfg())
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=1), checkpoint_dir=tmp_path)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    steps = []

    class SignalsWhenCollected:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            sum(range(1000))  # the handler runs here, inside the finaliser

    class SignalsWhileSettingUp:
        def reset(self) -> None:  # called by train() before the first step
            SignalsWhenCollected()

        def __call__(self, *args, **kwargs) -> None:
            return None

    with pytest.raises(KeyboardInterrupt):
        train(_fresh(small_corpus), small_corpus, _cfg(), checkpoint_dir=tmp_path, resume=True,
              regularizer=SignalsWhileSettingUp(), on_batch_end=lambda *a: steps.append(a))
    assert steps == [] and (tmp_path / "last" / "model.safetensors").read_bytes() == before
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = train(_fresh(small_corpus), small_corpus, _cfg(), checkpoint_dir=tmp_path, resume=True)
    assert _without_time(resumed.history) == _without_time(straight.history)
    assert _same_weights(resumed.model, straight.model)


def test_resume_applies_and_records_a_changed_learning_rate(small_corpus, tmp_path) -> None:
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=2), checkpoint_dir=tmp_path)
    resumed = train(_fresh(small_corpus), small_corpus, _cfg(epochs=3, lr=0.001), checkpoint_dir=tmp_path,
                    resume=True)
    assert [h["lr"] for h in resumed.history] == [0.01, 0.01, 0.001]
    trainer = json.loads((tmp_path / "last" / "trainer.json").read_text())
    assert trainer["config"]["lr"] == 0.001
    assert trainer["optimizer_param_groups"][0]["lr"] == 0.001
    assert trainer["resumes"] == [{"epochs_completed": 2, "steps_completed": 0,
                                   "changed": {"epochs": [2, 3], "lr": [0.01, 0.001]}}]
    config = json.loads((tmp_path / "last" / "config.json").read_text())
    assert config["training"]["lr"] == 0.001


def test_resume_refuses_settings_that_cannot_change_naming_each(small_corpus, tmp_path) -> None:
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match=r"cannot resume from .*last: num_topics is 8 in the checkpoint but 12 "
                                         r"now; batch_size is 500 in the checkpoint but 250 now\. These settings"):
        train(_fresh(small_corpus, topics=12), small_corpus, _cfg(epochs=2, batch_size=250),
              checkpoint_dir=tmp_path, resume=True)


def test_a_checkpoint_is_not_overwritten_without_resume(small_corpus, tmp_path) -> None:
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=1), checkpoint_dir=tmp_path)
    before = (tmp_path / "last" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"already holds a training checkpoint \(after epoch 1\); pass resume=True"):
        train(_fresh(small_corpus, seed=4), small_corpus, _cfg(epochs=2), checkpoint_dir=tmp_path)
    assert (tmp_path / "last" / "model.safetensors").read_bytes() == before


def test_weight_averaging_returns_the_best_epochs_averaged_weights(small_corpus) -> None:
    from etm.training import evaluate_completion

    result = train(_fresh(small_corpus), small_corpus, _cfg(epochs=4, lr=0.02, ema_decay=0.9))
    again = evaluate_completion(result.model, *small_corpus.valid_halves)
    assert again.perplexity_per_document == pytest.approx(result.best_valid_perplexity, rel=1e-5)


# -- units of files ---------------------------------------------------------------------
def test_directory_swap_interrupted_between_renames_is_undone(tmp_path) -> None:
    target = tmp_path / "last"
    target.mkdir()
    (target / "a.txt").write_text("old")
    staging = staging_directory(target)
    (staging / "a.txt").write_text("new")
    os.replace(target, tmp_path / f".last.etm-old-{os.getpid()}")  # the crash came after the first rename
    recover_directory(target)
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]  # the half-built staging is gone too
    staging = staging_directory(target)
    (staging / "a.txt").write_text("new")
    replace_directory(staging, target)
    assert (target / "a.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_a_model_save_interrupted_before_its_commit_never_loads_as_a_mix(small_corpus, tmp_path) -> None:
    vocab = list(small_corpus.vocabulary)
    save_model(tmp_path, _fresh(small_corpus), vocab)
    (tmp_path / "config.json").unlink()  # what a crash between the renames of commit_files leaves
    with pytest.raises(FileNotFoundError, match=r"the model in .* is incomplete \(its save was interrupted\)"):
        load_model(tmp_path)
    save_model(tmp_path, _fresh(small_corpus, seed=2), vocab)
    (tmp_path / ".model.safetensors.x1.tmp").write_bytes(b"partial")  # a killed writer's temporary file
    commit_files(tmp_path, {"note.txt": b"x"}, marker="note.txt")
    assert not list(tmp_path.glob(".*.tmp"))
    model, _, _ = load_model(tmp_path)
    assert _same_weights(model, _fresh(small_corpus, seed=2))


def test_read_checkpoint_names_what_is_wrong(small_corpus, tmp_path) -> None:
    train(_fresh(small_corpus), small_corpus, _cfg(epochs=1), checkpoint_dir=tmp_path)
    (tmp_path / "last" / "trainer.json").write_text("[]")
    with pytest.raises(ValueError, match=r"trainer.json is not an etm trainer state"):
        read_checkpoint(tmp_path / "last")
