"""`etm train` / `etm prepare` outputs: never overwritten by accident, replaced atomically, checked up front."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from etm.cli import main

TRAIN = ["--num-topics", "4", "--t-hidden-size", "32", "--rho-size", "16", "--batch-size", "200", "--lr", "0.01",
         "--quiet", "--device", "cpu", "--checkpoint-every", "1"]


@pytest.fixture(scope="module")
def corpus(news_workspace) -> Path:
    out = news_workspace / "outputs-corpus"
    assert main(["prepare", str(news_workspace / "news.jsonl.gz"), "-o", str(out), "--split-field", "split",
                 "--strip-newsgroup", "--min-df", "3", "--max-df", "0.5", "--quiet"]) == 0
    return out


def _train(corpus: Path, model: Path, *extra: str) -> int:
    return main(["train", str(corpus), "-o", str(model), *TRAIN, *extra])


def _history(model: Path) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in json.loads((model / "history.json").read_text())]


def test_an_existing_model_is_kept_and_the_error_says_resume_or_force(corpus, tmp_path, capsys) -> None:
    model = tmp_path / "model"
    assert _train(corpus, model, "--epochs", "2") == 0
    before = (model / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert _train(corpus, model, "--epochs", "1", "--num-topics", "6") == 1
    err = capsys.readouterr().err
    assert (f"-o {model} already holds a trained model and a resumable checkpoint after epoch 2. To replace it pass "
            "--force (the old model stays readable until the new one is complete); to train it further pass --resume "
            "with a larger --epochs") in err
    assert (model / "model.safetensors").read_bytes() == before
    assert _train(corpus, model, "--epochs", "1", "--num-topics", "6", "--force") == 0
    config = json.loads((model / "config.json").read_text())
    assert config["model"]["num_topics"] == 6 and len(_history(model)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the staging directory is gone


def test_an_unfinished_run_is_continued_with_resume(corpus, tmp_path, capsys) -> None:
    model = tmp_path / "model"
    assert _train(corpus, model, "--epochs", "2") == 0
    for name in ("config.json", "model.safetensors", "vocab.txt", "history.json"):  # as if it died before saving
        (model / name).unlink()
    capsys.readouterr()
    assert _train(corpus, model, "--epochs", "3") == 1
    assert (f"-o {model} holds an unfinished run (a resumable checkpoint after epoch 2). To continue it pass "
            "--resume; to start over pass --force") in capsys.readouterr().err
    assert _train(corpus, model, "--epochs", "3", "--resume") == 0
    assert len(_history(model)) == 3


def test_force_keeps_the_old_model_readable_until_the_new_one_is_complete(corpus, tmp_path, capsys) -> None:
    from etm.persistence import load_model

    model = tmp_path / "model"
    assert _train(corpus, model, "--epochs", "1") == 0
    seen: list[int] = []

    def look(*_: object) -> None:  # during the new run, the old model is still there, whole
        seen.append(load_model(model)[0].num_topics)

    from etm.training import loop as training

    original = training._Trainer._end_epoch

    def end_epoch(self, epoch):
        look()
        return original(self, epoch)

    training._Trainer._end_epoch = end_epoch
    try:
        assert _train(corpus, model, "--epochs", "2", "--num-topics", "5", "--force") == 0
    finally:
        training._Trainer._end_epoch = original
    assert seen == [4, 4]
    assert load_model(model)[0].num_topics == 5


def test_resume_continues_with_a_changed_lr_recorded_truthfully(corpus, tmp_path) -> None:
    straight, model = tmp_path / "straight", tmp_path / "model"
    assert _train(corpus, straight, "--epochs", "3") == 0
    assert _train(corpus, model, "--epochs", "2") == 0
    assert _train(corpus, model, "--epochs", "3", "--resume") == 0
    assert _history(model) == _history(straight)
    assert _train(corpus, model, "--epochs", "4", "--resume", "--lr", "0.002") == 0
    assert json.loads((model / "config.json").read_text())["estimator"]["lr"] == 0.002
    assert json.loads((model / "checkpoints" / "last" / "config.json").read_text())["training"]["lr"] == 0.002
    assert [h["lr"] for h in _history(model)] == [0.01, 0.01, 0.01, 0.002]


def test_resume_with_another_shape_names_each_setting(corpus, tmp_path, capsys) -> None:
    model = tmp_path / "model"
    assert _train(corpus, model, "--epochs", "1") == 0
    capsys.readouterr()
    assert _train(corpus, model, "--epochs", "2", "--resume", "--num-topics", "7", "--t-hidden-size", "16") == 1
    err = capsys.readouterr().err
    assert "num_topics is 4 in the checkpoint but 7 now; t_hidden_size is 32 in the checkpoint but 16 now" in err
    assert "Traceback" not in err


def test_resume_on_a_model_without_checkpoint_and_force_with_resume(corpus, tmp_path, capsys) -> None:
    model = tmp_path / "model"
    assert _train(corpus, model, "--epochs", "1") == 0
    import shutil

    shutil.rmtree(model / "checkpoints")
    capsys.readouterr()
    assert _train(corpus, model, "--epochs", "2", "--resume") == 1
    assert "holds a trained model but no checkpoint to resume" in capsys.readouterr().err
    assert _train(corpus, model, "--epochs", "2", "--resume", "--force") == 1
    assert "give one of them" in capsys.readouterr().err


def test_output_problems_fail_before_any_work(corpus, tmp_path, capsys) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert _train(corpus, a_file, "--epochs", "1") == 1
    assert f"-o {a_file} is an existing file" in capsys.readouterr().err
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("x")
    assert _train(corpus, foreign, "--epochs", "1", "--force") == 1
    assert "holds files that are not an etm model (todo.txt)" in capsys.readouterr().err
    if os.geteuid() != 0:  # root writes anywhere; a read-only parent is tested by the probe below
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert _train(corpus, locked / "model", "--epochs", "1") == 1
        assert "cannot write to -o" in capsys.readouterr().err
    assert _train(corpus, Path("/proc/etm-model"), "--epochs", "1") == 1
    assert "cannot write to -o /proc/etm-model" in capsys.readouterr().err


def test_prepare_refuses_an_existing_corpus_or_other_files(news_workspace, corpus, tmp_path, capsys) -> None:
    src = str(news_workspace / "news.jsonl.gz")
    capsys.readouterr()
    assert main(["prepare", src, "-o", str(corpus), "--min-df", "3", "--quiet"]) == 1
    assert "already holds a prepared corpus; pass --force to replace it" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.csv").write_text("x")
    assert main(["prepare", src, "-o", str(other), "--quiet"]) == 1
    assert "holds files that are not an etm corpus (data.csv)" in capsys.readouterr().err
    copy = tmp_path / "copy"
    assert main(["prepare", src, "-o", str(copy), "--min-df", "3", "--quiet"]) == 0
    vocab_before = (copy / "vocab.txt").read_text().split()
    assert main(["prepare", src, "-o", str(copy), "--min-df", "20", "--quiet", "--force"]) == 0
    assert len((copy / "vocab.txt").read_text().split()) < len(vocab_before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy", "other"]
    for shard_run in (["--shard-size", "300"], ["--shard-size", "300", "--force"]):
        code = main(["prepare", src, "-o", str(copy), "--min-df", "3", "--quiet", *shard_run])
        assert code == (0 if "--force" in shard_run else 1)
