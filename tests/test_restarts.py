"""``n_init``: several runs from different seeds, the one of best validation quality kept; exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from etm import TopicModel
from etm.cli import main
from etm.corpus import PreparedCorpus
from etm.estimator import restart_seed
from etm.validation import validation_quality, validation_reference

SMALL = {"n_topics": 8, "epochs": 3, "hidden_size": 32, "embedding_size": 16, "batch_size": 300, "device": "cpu"}


def _scores(restarts: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in restarts]


@pytest.fixture(scope="module")
def three_runs(small_corpus) -> TopicModel:
    return TopicModel(**SMALL, n_init=3).fit(small_corpus)


def test_the_run_of_best_validation_quality_is_kept(small_corpus, three_runs) -> None:
    est = three_runs
    seeds = [r["seed"] for r in est.restarts_]
    assert seeds == [restart_seed(2019, i) for i in range(3)] and seeds[0] == 2019 and len(set(seeds)) == 3
    qualities = [r["quality"] for r in est.restarts_]
    kept = int(np.argmax(qualities))
    assert est.init_seed_ == seeds[kept] and est.random_state_ == 2019
    reference = validation_reference(small_corpus)
    assert validation_quality(est.topic_word_, reference)["quality"] == pytest.approx(max(qualities))
    assert len(est.history_) == est.restarts_[kept]["epochs"] and est.best_epoch_ == est.restarts_[kept]["best_epoch"]
    assert est.training_seconds_ == pytest.approx(sum(r["seconds"] for r in est.restarts_))
    assert len(set(qualities)) == 3  # the runs differ


def test_each_run_is_the_single_run_of_its_seed(small_corpus, three_runs) -> None:
    """Run 0 is what n_init=1 trains; the kept run is reproduced by its seed alone (learned embeddings)."""
    single = TopicModel(**SMALL).fit(small_corpus)
    assert single.restarts_ is None and single.init_seed_ == 2019
    reference = validation_reference(small_corpus)
    assert validation_quality(single.topic_word_, reference)["quality"] == pytest.approx(
        three_runs.restarts_[0]["quality"])
    again = TopicModel(**SMALL, random_state=three_runs.init_seed_).fit(small_corpus)
    np.testing.assert_allclose(again.topic_word_, three_runs.topic_word_, rtol=1e-5, atol=1e-8)


def test_the_runs_are_saved_with_the_model(three_runs, tmp_path) -> None:
    three_runs.save(tmp_path / "m")
    loaded = TopicModel.load(tmp_path / "m", device="cpu")
    assert loaded.restarts_ == three_runs.restarts_ and loaded.init_seed_ == three_runs.init_seed_
    assert loaded.n_init == 3


def test_an_interrupt_in_a_later_run_resumes_exactly(small_corpus, three_runs, tmp_path) -> None:
    calls = []

    def interrupt(epoch, model, record) -> None:
        calls.append(epoch)
        if len(calls) == 8:  # run 2 (the third), after its second epoch
            raise KeyboardInterrupt

    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):
        TopicModel(**SMALL, n_init=3, checkpoint_dir=ckpt).fit(small_corpus, on_epoch_end=interrupt)
    assert sorted(p.name for p in ckpt.iterdir()) == ["init-0", "init-1", "init-2"]
    calls.clear()
    resumed = TopicModel(**SMALL, n_init=3, checkpoint_dir=ckpt).fit(small_corpus, resume=True,
                                                                  on_epoch_end=lambda e, m, r: calls.append(e))
    assert calls == [3]  # runs 0 and 1 were complete: loaded, not retrained; run 2 trained its last epoch
    assert _scores(resumed.restarts_) == _scores(three_runs.restarts_)
    np.testing.assert_array_equal(resumed.topic_word_, three_runs.topic_word_)

    with pytest.raises(ValueError, match=r"holds the checkpoints of 3 runs of n_init > 1 .*resume with n_init=3"):
        TopicModel(**SMALL, checkpoint_dir=ckpt).fit(small_corpus, resume=True)
    with pytest.raises(ValueError, match=r"already holds training checkpoints \(init-0, init-1, init-2 .*resume=True"):
        TopicModel(**SMALL, n_init=3, checkpoint_dir=ckpt).fit(small_corpus)


def test_a_single_run_checkpoint_is_not_resumed_as_several(small_corpus, tmp_path) -> None:
    ckpt = tmp_path / "ckpt"
    TopicModel(**{**SMALL, "epochs": 1}, checkpoint_dir=ckpt).fit(small_corpus)
    with pytest.raises(ValueError, match=r"is the checkpoint of a single run \(n_init=1\); resume it with n_init=1"):
        TopicModel(**SMALL, n_init=2, checkpoint_dir=ckpt).fit(small_corpus, resume=True)


def test_several_runs_need_validation_documents(small_corpus) -> None:
    no_valid = PreparedCorpus(train=small_corpus.train)
    with pytest.raises(ValueError, match=r"no validation documents; n_init=2 chooses among its runs on held-out"):
        TopicModel(**SMALL, n_init=2).fit(no_valid)
    with pytest.raises(ValueError, match=r"n_init must be >= 1, got 0"):
        TopicModel(**SMALL, n_init=0).fit(small_corpus)


def test_etm_train_n_init_prints_every_run_and_guards_the_output(news_workspace, tmp_path, capsys) -> None:
    corpus = tmp_path / "corpus"
    assert main(["prepare", str(news_workspace / "news.jsonl.gz"), "-o", str(corpus), "--split-field", "split",
                 "--strip-newsgroup", "--min-df", "3", "--max-df", "0.5", "--quiet"]) == 0
    model = tmp_path / "model"
    argv = ["train", str(corpus), "-o", str(model), "--num-topics", "4", "--t-hidden-size", "32", "--rho-size", "16",
            "--epochs", "2", "--n-init", "2", "--device", "cpu", "--quiet"]
    capsys.readouterr()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2 runs, kept the best validation quality" in out and out.count("  <- kept") == 1
    assert "run 1 (seed 2019): quality " in out and f"run 2 (seed {restart_seed(2019, 1)}): quality " in out
    config = json.loads((model / "config.json").read_text())
    assert [r["seed"] for r in config["restarts"]] == [2019, restart_seed(2019, 1)]
    assert sorted(p.name for p in (model / "checkpoints").iterdir()) == ["init-0", "init-1"]
    assert main(argv) == 1
    assert "the resumable checkpoints of 2 runs of --n-init (the last after epoch 2)" in capsys.readouterr().err
    assert main([*argv, "--resume", "--json"]) == 0  # both runs complete: loaded, nothing retrained
    summary = json.loads(capsys.readouterr().out)
    assert _scores(summary["restarts"]) == _scores(config["restarts"]) and summary["init_seed"] == config["init_seed"]
