"""The etm command line end to end on raw 20 Newsgroups, plus its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from etm.cli import main


@pytest.fixture(scope="module")
def workspace(news_workspace) -> Path:
    return news_workspace


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(workspace) -> Path:
    corpus, model = workspace / "corpus", workspace / "model"
    assert main(["prepare", str(workspace / "news.jsonl.gz"), "-o", str(corpus), "--label-field", "label",
                 "--split-field", "split", "--strip-newsgroup", "--min-df", "3", "--max-df", "0.5"]) == 0
    assert main(["train", str(corpus), "-o", str(model), "--num-topics", "5", "--t-hidden-size", "32",
                 "--rho-size", "16", "--epochs", "3", "--batch_size", "200", "--lr", "0.01", "--quiet",
                 "--device", "cpu"]) == 0
    return workspace


def test_prepare_writes_a_loadable_corpus(trained: Path) -> None:
    from etm.corpus import PreparedCorpus

    pc = PreparedCorpus.load(trained / "corpus")
    assert pc.train.n_docs > 400 and pc.test.n_docs > 150 and pc.valid.n_docs > 30
    assert pc.train.labels is not None and pc.test_halves is not None
    assert pc.settings["preprocessing"]["strip_newsgroup"] is True


def test_train_outputs_model_history_and_checkpoint(trained: Path) -> None:
    model = trained / "model"
    for name in ("model.safetensors", "config.json", "vocab.txt", "history.json"):
        assert (model / name).is_file(), name
    assert (model / "checkpoints" / "last" / "trainer.json").is_file()
    history = json.loads((model / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3]


def test_evaluate_json(trained: Path, capsys) -> None:
    code, out, _ = _run(capsys, "evaluate", str(trained / "model"), str(trained / "corpus"), "--json")
    assert code == 0
    result = json.loads(out)
    for key in ("perplexity_per_document", "perplexity_per_token", "coherence", "diversity", "quality"):
        assert np.isfinite(result[key]), key
    assert result["quality"] == pytest.approx(result["coherence"] * result["diversity"])


def test_evaluate_text(trained: Path, capsys) -> None:
    code, out, _ = _run(capsys, "evaluate", str(trained / "model"), str(trained / "corpus"))
    assert code == 0 and "per document (authors' form)" in out and "topic quality" in out


def test_topics(trained: Path, capsys) -> None:
    code, out, _ = _run(capsys, "topics", str(trained / "model"), "-n", "4", "--json")
    topics = json.loads(out)["topics"]
    assert code == 0 and len(topics) == 5 and all(len(t) == 4 for t in topics)
    code, out, _ = _run(capsys, "topics", str(trained / "model"))
    assert out.count("topic ") == 5


def test_transform_csv_and_npy(trained: Path, capsys) -> None:
    docs = trained / "new.txt"
    docs.write_text("the space shuttle launch was delayed\nzzzunknownword\ngod and religion debate\n")
    code, out, _ = _run(capsys, "transform", str(trained / "model"), str(docs), "-o", str(trained / "t.csv"),
                        "--json")
    assert code == 0
    report = json.loads(out)
    assert report["shape"] == [3, 5] and report["unknown_tokens"] >= 1 and report["empty_documents"] == 1
    lines = (trained / "t.csv").read_text().splitlines()
    assert lines[0].startswith("document,topic_0") and len(lines) == 4
    assert sum(float(v) for v in lines[1].split(",")[1:]) == pytest.approx(1, abs=1e-4)
    assert main(["transform", str(trained / "model"), str(docs), "-o", str(trained / "t.npy")]) == 0
    assert np.load(trained / "t.npy", allow_pickle=False).shape == (3, 5)



def test_transform_of_a_corpus_directory_names_rows_by_its_ids(trained: Path, capsys) -> None:
    from etm.corpus import PreparedCorpus

    corpus = PreparedCorpus.load(trained / "corpus")
    code, _, _ = _run(capsys, "transform", str(trained / "model"), str(trained / "corpus"), "-o",
                      str(trained / "corpus_theta.csv"))
    rows = (trained / "corpus_theta.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert code == 0 and [r.split(",")[0] for r in rows] == [i for _, p in corpus.parts() for i in p.doc_ids]


def test_transform_output_that_cannot_be_written_fails_first_naming_it(trained: Path, tmp_path, capsys) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    target = blocker / "theta.csv"
    # the input does not exist either: the output is checked when its writer opens, before any document is read
    code, out, err = _run(capsys, "transform", str(trained / "model"), str(tmp_path / "missing.txt"), "-o",
                          str(target))
    assert code == 1 and out == ""
    assert err == (f"etm transform: error: cannot write topic proportions to {target}: {blocker} is a file, "
                   "not a directory; choose another output path\n")

def test_resume_after_completion_is_a_no_op(trained: Path, capsys) -> None:
    code, out, _ = _run(capsys, "train", str(trained / "corpus"), "-o", str(trained / "model2"), "--num-topics",
                        "5", "--t-hidden-size", "32", "--rho-size", "16", "--epochs", "3", "--batch-size", "200",
                        "--quiet", "--device", "cpu", "--checkpoint-dir", str(trained / "model" / "checkpoints"),
                        "--resume", "--json")
    assert code == 0 and json.loads(out)["epochs_run"] == 3


def test_help_for_every_command(capsys) -> None:
    for command in ("prepare", "train", "evaluate", "topics", "transform"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: etm " + command in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["topics", "M", "-n", "0"], "argument -n/--words: must be a positive integer, got 0"),
        (["topics", "M", "--words", "-2"], "argument -n/--words: must be a positive integer, got -2"),
        (["topics", "M", "-n", "three"], "argument -n/--words: expected an integer, got 'three'"),
        (["neighbors", "M", "w", "-n", "0"], "argument -n/--neighbors: must be a positive integer, got 0"),
        (["plot", "M", "-o", "F", "-n", "-1"], "argument -n/--words: must be a positive integer, got -1"),
        (["train", "C", "-o", "M", "--epochs", "0"], "argument --epochs: epochs must be >= 1, got 0"),
        (["train", "C", "-o", "M", "--num-topics", "0"], "argument --num-topics/--num_topics: n_topics must be >= 1"),
        (["train", "C", "-o", "M", "--topics", "-1"], "argument --topics: must be 0 or more, got -1"),
        (["transform", "M", "I", "-o", "O", "--chunk-size", "0"], "argument --chunk-size/--chunk_size: must be a"),
        (["prepare", "I", "-o", "O", "--shard-size", "0"], "argument --shard-size/--shard_size: must be a positive"),
        (["embed", "I", "-o", "O", "--dim", "0"], "argument --dim/--dim-rho/--dim_rho: must be a positive integer"),
    ],
)
def test_counts_below_their_minimum_are_usage_errors(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2  # a usage error: argparse's exit status, returned rather than raised
    assert message in capsys.readouterr().err


def test_train_topics_zero_prints_no_topics(trained: Path, tmp_path, capsys) -> None:
    code, out, _ = _run(capsys, "train", str(trained / "corpus"), "-o", str(tmp_path / "m"), "--num-topics", "3",
                        "--t-hidden-size", "16", "--rho-size", "8", "--epochs", "1", "--quiet", "--device", "cpu",
                        "--topics", "0")
    assert code == 0 and "trained 1 epochs" in out and "topic " not in out


def test_missing_input_file(tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "prepare", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "c"))
    assert code == 1 and "nope.jsonl" in err and "etm prepare: error:" in err


def test_missing_column(tmp_path, capsys) -> None:
    (tmp_path / "d.csv").write_text("body,label\nhello world,a\n")
    code, _, err = _run(capsys, "prepare", str(tmp_path / "d.csv"), "-o", str(tmp_path / "c"))
    assert code == 1 and "text" in err and "body" in err


def test_undecodable_bytes_suggest_encoding(tmp_path, capsys) -> None:
    (tmp_path / "d.txt").write_bytes("first line\nsecond caf\xe9 line\n".encode("latin-1"))
    code, _, err = _run(capsys, "prepare", str(tmp_path / "d.txt"), "-o", str(tmp_path / "c"))
    assert code == 1 and "line 2" in err and "--encoding" in err


def _folder_corpus(root: Path) -> Path:
    """Twelve short files in two label folders; one has a byte that is not UTF-8 on its line 2."""
    for label, words in (("space", "orbit launch shuttle nasa"), ("church", "god bible faith church")):
        for i in range(6):
            (root / label).mkdir(parents=True, exist_ok=True)
            (root / label / f"{i}.txt").write_text(f"{words} {label}\n{words}\n", encoding="utf-8")
    (root / "space" / "3.txt").write_bytes(b"orbit launch shuttle\nnasa caf\xe9 orbit\n")
    return root


@pytest.mark.parametrize("sharded", [False, True])
def test_prepare_encoding_errors_replace_reads_a_folder_with_one_bad_byte(tmp_path, capsys, caplog, sharded) -> None:
    docs = _folder_corpus(tmp_path / "docs")
    shards = ["--shard-size", "5", "--quiet"] if sharded else []
    code, _, err = _run(capsys, "prepare", str(docs), "-o", str(tmp_path / "strict"), *shards)
    assert code == 1 and "space/3.txt, line 2; pass the right encoding" in err and "--encoding-errors replace" in err
    code, out, _ = _run(capsys, "prepare", str(docs), "-o", str(tmp_path / "c"), "--encoding-errors", "replace",
                        *shards)
    assert code == 0 and "  undecodable_bytes: 1\n" in out
    warnings = [r.getMessage() for r in caplog.records if "undecodable" in r.getMessage()]
    assert len(warnings) == 1 and "docs: 1 undecodable byte(s) on 1 line(s) of 1 file(s) were replaced" in warnings[0]
    code, out, _ = _run(capsys, "prepare", str(docs), "-o", str(tmp_path / "c"), "--force", "--encoding_errors",
                        "ignore", "--json", *shards)
    assert code == 0 and json.loads(out)["report"]["undecodable_bytes"] == 1


def test_model_corpus_vocabulary_mismatch(trained: Path, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    assert main(["prepare", str(trained / "news.jsonl.gz"), "-o", str(other), "--split-field", "split",
                 "--min-df", "5"]) == 0
    capsys.readouterr()
    code, _, err = _run(capsys, "evaluate", str(trained / "model"), str(other))
    assert code == 1 and "words in its vocabulary" in err


def test_corrupt_model_file(trained: Path, tmp_path, capsys) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(trained / "model", broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    code, _, err = _run(capsys, "topics", str(broken))
    assert code == 1 and "corrupt or truncated" in err


def test_too_many_topics(trained: Path, tmp_path, capsys) -> None:
    code, _, err = _run(capsys, "train", str(trained / "corpus"), "-o", str(tmp_path / "m"), "--num-topics",
                        "100000", "--epochs", "1", "--quiet", "--device", "cpu")
    assert code == 1 and "more than the" in err and "words of the vocabulary" in err


def test_train_passes_encoder_token_drop_to_the_model_file(trained: Path, capsys, tmp_path) -> None:
    code, _, _ = _run(capsys, "train", str(trained / "corpus"), "-o", str(tmp_path / "m"), "--num-topics", "5",
                      "--t-hidden-size", "32", "--rho-size", "16", "--epochs", "1", "--batch-size", "200", "--quiet",
                      "--device", "cpu", "--encoder-token-drop", "0.4")
    assert code == 0
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["estimator"]["encoder_token_drop"] == 0.4
    code, _, err = _run(capsys, "train", str(trained / "corpus"), "-o", str(tmp_path / "m2"), "--num-topics", "5",
                        "--epochs", "1", "--quiet", "--device", "cpu", "--encoder-token-drop", "1.5")
    assert code != 0 and "encoder_token_drop" in err
