"""Word embeddings: reading every format, alignment, skip-gram, and the labelled ETM end to end."""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from gensim.models import KeyedVectors
from hypothesis import given, settings
from hypothesis import strategies as st

from etm.cli import main
from etm.embeddings import align_embeddings, load_embeddings, read_embeddings, save_word2vec, train_skipgram
from etm.estimator import TopicModel
from etm.neighbors import nearest_to_vector, nearest_words, topic_neighbors


def _kv(words: list[str], dim: int = 5, seed: int = 0) -> KeyedVectors:
    kv = KeyedVectors(dim)
    kv.add_vectors(words, np.random.default_rng(seed).normal(size=(len(words), dim)).astype(np.float32))
    return kv


@pytest.mark.parametrize("binary", [False, True])
def test_reads_what_gensim_writes(tmp_path: Path, binary: bool) -> None:
    kv = _kv(["space", "orbit", "NASA", "launch", "car"])
    path = tmp_path / ("v.bin" if binary else "v.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    everything = read_embeddings(path)
    assert everything.index_to_key == kv.index_to_key
    np.testing.assert_allclose(everything.vectors, kv.vectors, rtol=1e-6)
    kept = read_embeddings(path, ["orbit", "nasa", "unknown"])  # only the vocabulary's rows, cased fallback
    assert kept.index_to_key == ["orbit", "nasa"]
    np.testing.assert_allclose(kept["nasa"], kv["NASA"], rtol=1e-6)


def test_binary_detected_without_bin_suffix_and_gzip(tmp_path: Path) -> None:
    kv = _kv(["a", "b", "c"], dim=8)
    raw = tmp_path / "raw"
    kv.save_word2vec_format(str(raw), binary=True)
    gz = tmp_path / "vectors.gz"
    gz.write_bytes(gzip.compress(raw.read_bytes()))
    for path in (raw, gz):
        np.testing.assert_allclose(read_embeddings(path).vectors, kv.vectors, rtol=1e-6)


def test_glove_and_fasttext_text(tmp_path: Path) -> None:
    glove = tmp_path / "glove.6B.3d.txt"
    glove.write_text("the 0.1 0.2 0.3\nspace -1 0.5 2e-1\n", encoding="utf-8")
    kv = read_embeddings(glove)
    assert kv.index_to_key == ["the", "space"] and kv.vector_size == 3
    np.testing.assert_allclose(kv["space"], [-1, 0.5, 0.2])
    vec = tmp_path / "wiki.vec"
    vec.write_text("2 3\nthe 0.1 0.2 0.3 \nspace -1 0.5 0.2 \n", encoding="utf-8")  # fastText's trailing space
    np.testing.assert_allclose(read_embeddings(vec)["space"], [-1, 0.5, 0.2])


@settings(max_examples=25, deadline=None)
@given(
    words=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyzé", min_size=1, max_size=8), min_size=1, max_size=12,
                   unique=True),
    dim=st.integers(1, 6),
    binary=st.booleans(),
)
def test_save_read_round_trip(tmp_path_factory, words: list[str], dim: int, binary: bool) -> None:
    kv = _kv(words, dim=dim)
    path = tmp_path_factory.mktemp("rt") / ("v.bin" if binary else "v.txt")
    save_word2vec(kv, path, binary=binary)
    back = read_embeddings(path, lowercase_fallback=False)
    assert back.index_to_key == words
    np.testing.assert_array_equal(back.vectors, kv.vectors)  # 9 significant digits round-trip float32
    theirs = KeyedVectors.load_word2vec_format(str(path), binary=binary)  # and gensim reads our files
    np.testing.assert_array_equal(theirs.vectors, kv.vectors)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("2 3\na 1 2 3\nb 1 2\n", "line 3: 2 values for 'b', expected 3"),
        ("a 1 2 3\nb 1 2 3 4\n", "line 2: 4 values for 'b', expected 3"),
        ("2 3\na 1 2 x\nb 1 2 3\n", "line 2: the vector of 'a' has a non-numeric value"),
        ("3 2\na 1 2\nb 1 2\n", "promises 3 vectors but the file has 2"),
        ("2 2\na 1 nan\nb 1 2\n", "line 2: the vector of 'a' contains NaN"),
        ("2 2\nlonely\n", "line 2: a word without a vector"),
    ],
)
def test_bad_text_files_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_embeddings(path)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_embeddings(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_embeddings(tmp_path / "empty.txt")
    kv = _kv(["a", "b", "c"], dim=4)
    kv.save_word2vec_format(str(tmp_path / "v.bin"), binary=True)
    data = (tmp_path / "v.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(data[:-7])
    with pytest.raises(ValueError, match="truncated"):
        read_embeddings(tmp_path / "cut.bin")
    (tmp_path / "latin.txt").write_bytes("1 2\ncaf\xe9 1 2\n".encode("latin-1"))
    with pytest.raises(ValueError, match="line 2: undecodable bytes.*--encoding"):
        read_embeddings(tmp_path / "latin.txt")
    assert read_embeddings(tmp_path / "latin.txt", encoding="latin-1").index_to_key == ["café"]
    with pytest.raises(ValueError, match="unknown embedding format"):
        read_embeddings(tmp_path / "latin.txt", format="elmo")
    with pytest.raises(ValueError, match="line 1: expected a '<count> <dimension>' header"):
        read_embeddings(_write(tmp_path / "nohead.txt", "a 1 2\n"), format="word2vec")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_align_reports_coverage_and_seeds_missing_rows() -> None:
    kv = _kv(["a", "b", "c"], dim=6)
    first = align_embeddings(kv, ["c", "x", "a", "y"], random_state=7)
    again = align_embeddings(kv, ["c", "x", "a", "y"], random_state=7)
    other = align_embeddings(kv, ["c", "x", "a", "y"], random_state=8)
    assert first.found.tolist() == [True, False, True, False] and first.coverage == 0.5
    assert first.missing_words == ["x", "y"] and first.missing_rows.tolist() == [1, 3]
    np.testing.assert_array_equal(first.vectors[0], kv["c"])
    np.testing.assert_array_equal(first.vectors, again.vectors)
    assert not np.allclose(first.vectors[1], other.vectors[1])
    assert first.report()["covered"] == 2
    with pytest.raises(ValueError, match="none of the 2 vocabulary words has a vector"):
        align_embeddings(kv, ["zz", "yy"])


def test_neighbors_and_unknown_word() -> None:
    vocab = ["north", "south", "east", "apple"]
    emb = np.array([[1.0, 0.1], [0.9, 0.2], [0.8, 0.5], [-1.0, 0.0]])
    near = nearest_words("north", emb, vocab, n=2)
    assert [w for w, _ in near] == ["south", "east"] and near[0][1] > near[1][1]
    assert nearest_to_vector(np.array([-1.0, 0.0]), emb, vocab, n=1)[0][0] == "apple"
    assert [w for w, _ in topic_neighbors(np.array([[-2.0, 0.0]]), emb, vocab, n=1)[0]] == ["apple"]
    with pytest.raises(ValueError, match="'nort' is not in the model's vocabulary of 4 words; close words: north"):
        nearest_words("nort", emb, vocab)


def test_skipgram_is_reproducible_and_learns_on_20ng(newsgroup_records) -> None:
    from etm.preprocessing import Preprocessor

    texts = [r["text"] for r in newsgroup_records if r["split"] == "train"]
    sentences = Preprocessor(strip_newsgroup=True).tokenize(texts)
    a = train_skipgram(sentences, vector_size=24, epochs=3, seed=3)
    b = train_skipgram(sentences, vector_size=24, epochs=3, seed=3)
    assert a.index_to_key == b.index_to_key
    np.testing.assert_array_equal(a.vectors, b.vectors)
    counts: dict[str, int] = {}
    for s in sentences:
        for t in s:
            counts[t] = counts.get(t, 0) + 1
    assert set(a.index_to_key) == {w for w, c in counts.items() if c >= 2}  # min_count 2, the authors' default
    with pytest.raises(ValueError, match="no tokens"):
        train_skipgram([[], []])


@pytest.fixture(scope="module")
def unsplit_input(tmp_path_factory) -> Path:
    """60 JSON lines with an ``id`` and a text and no split field, prepared into ``corpus`` (random split, ids)."""
    root = tmp_path_factory.mktemp("unsplit")
    themes = ["orbit launch shuttle rocket nasa", "church bible faith prayer god", "engine wheel brake car road"]
    with open(root / "docs.jsonl", "w", encoding="utf-8") as fh:
        for i in range(60):
            text = f"{themes[i % 3]} {themes[(i + 1) % 3].split()[i % 5]}"
            fh.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    assert main(["prepare", str(root / "docs.jsonl"), "-o", str(root / "corpus"), "--id-field", "id",
                 "--stop-words", "none", "--valid-size", "0.2", "--test-size", "0.2"]) == 0
    return root


def _embed(root: Path, *options: str) -> list[str]:
    return ["embed", str(root / "docs.jsonl"), "-o", str(root / "v.txt"), "--dim", "8", "--iters", "1", "--json",
            *options]


def test_embed_learns_from_the_corpus_training_documents_by_id(unsplit_input: Path, capsys, caplog) -> None:
    from etm.corpus import PreparedCorpus

    corpus = PreparedCorpus.load(unsplit_input / "corpus")
    assert main(_embed(unsplit_input, "--id-field", "id", "--corpus", str(unsplit_input / "corpus"))) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == corpus.train.n_docs == 36
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert main(_embed(unsplit_input, "--corpus", str(unsplit_input / "corpus"))) == 1  # ids "line N" are not "dN"
    err = capsys.readouterr().err
    assert "none of the 60 documents of" in err and "has the id of a training document of" in err
    assert "read the input with the --id-field (and --format) `etm prepare` was given" in err


def test_embed_refuses_to_learn_from_test_documents_it_cannot_tell_apart(unsplit_input: Path, tmp_path, capsys):
    import shutil

    shutil.copytree(unsplit_input / "corpus", tmp_path / "no_ids")
    meta = json.loads((tmp_path / "no_ids" / "meta.json").read_text(encoding="utf-8"))
    for part in meta["parts"].values():
        part["doc_ids"] = None
    (tmp_path / "no_ids" / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    assert main(_embed(unsplit_input, "--corpus", str(tmp_path / "no_ids"))) == 1
    err = capsys.readouterr().err
    assert "docs.jsonl has no split field and" in err and "records no document ids, so --split train cannot" in err
    assert "learning from all 60 would leak the test text into the embeddings" in err
    assert "Pass --split-field FIELD (the input's train/valid/test field), or --split all to learn from" in err
    assert main(_embed(unsplit_input, "--corpus", str(tmp_path / "no_ids"), "--split", "all")) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 60


def test_embed_without_corpus_or_split_field_warns_once(unsplit_input: Path, capsys, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="etm"):
        assert main(_embed(unsplit_input)) == 0
    assert json.loads(capsys.readouterr().out)["documents"] == 60
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "docs.jsonl has no split field: learning from all 60 documents, test documents " \
        "included; pass --split-field FIELD to keep them out" in warnings[0]
    caplog.clear()
    assert main(_embed(unsplit_input, "--split", "all")) == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.fixture(scope="module")
def labelled_workspace(news_workspace) -> Path:
    """raw 20NG -> etm prepare -> etm embed --corpus -> etm train --embeddings (fixed)."""
    root = news_workspace
    assert main(["prepare", str(root / "news.jsonl.gz"), "-o", str(root / "corpus"), "--label-field", "label",
                 "--split-field", "split", "--strip-newsgroup", "--min-df", "3", "--max-df", "0.5"]) == 0
    assert main(["embed", str(root / "news.jsonl.gz"), "-o", str(root / "vectors.txt"), "--split-field", "split",
                 "--corpus", str(root / "corpus"), "--dim", "16", "--iters", "3", "--json"]) == 0
    assert main(["train", str(root / "corpus"), "-o", str(root / "model"), "--embeddings", str(root / "vectors.txt"),
                 "--num-topics", "5", "--t-hidden-size", "32", "--epochs", "3", "--lr", "0.01", "--quiet",
                 "--device", "cpu"]) == 0
    return root


def test_embed_covers_the_corpus_vocabulary(labelled_workspace: Path) -> None:
    from etm.corpus import PreparedCorpus

    vocab = PreparedCorpus.load(labelled_workspace / "corpus").vocabulary
    kv = read_embeddings(labelled_workspace / "vectors.txt")
    assert kv.vector_size == 16
    # every vocabulary word occurs in >= 3 training documents, so min_count 2 keeps all of them, and nothing else
    assert set(kv.index_to_key) == set(vocab)


def test_labelled_model_keeps_embeddings_fixed_and_self_contained(labelled_workspace: Path, capsys) -> None:
    from etm.corpus import PreparedCorpus

    est = TopicModel.load(labelled_workspace / "model", device="cpu")
    vocab = est.vocabulary_
    aligned = load_embeddings(labelled_workspace / "vectors.txt", vocab)
    assert est.model_.train_embeddings is False and est.embedding_report_["coverage"] == 1.0
    np.testing.assert_array_equal(est.word_embeddings_, aligned.vectors)  # untouched by training
    assert "rho.weight" in est.model_.state_dict()  # a buffer: saved in the model file
    (labelled_workspace / "vectors.txt").rename(labelled_workspace / "moved.txt")
    try:
        again = TopicModel.load(labelled_workspace / "model", device="cpu")  # no need for the vectors file
        corpus = PreparedCorpus.load(labelled_workspace / "corpus")
        np.testing.assert_allclose(again.transform(corpus.test), est.transform(corpus.test), rtol=1e-6)
    finally:
        (labelled_workspace / "moved.txt").rename(labelled_workspace / "vectors.txt")
    code = main(["neighbors", str(labelled_workspace / "model"), vocab[0], "--topics", "-n", "3", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and len(result["words"][vocab[0]]) == 3 and len(result["topics"]) == 5
    assert vocab[0] not in [w for w, _ in result["words"][vocab[0]]]
    assert main(["neighbors", str(labelled_workspace / "model"), "zzzunknownzzz"]) == 1
    assert "'zzzunknownzzz' is not in the model's vocabulary" in capsys.readouterr().err


def test_missing_words_are_trained_or_fixed(small_corpus) -> None:
    vocab = small_corpus.vocabulary
    rng = np.random.default_rng(0)
    vectors = {w: rng.normal(size=8).astype(np.float32) for w in vocab[::2]}  # half the words have vectors
    aligned = align_embeddings(vectors, vocab, random_state=1)
    settings_ = dict(n_topics=4, hidden_size=16, epochs=2, batch_size=500, lr=0.02, device="cpu")
    learn = TopicModel(embeddings=aligned, **settings_).fit(small_corpus)
    fixed = TopicModel(embeddings=aligned, missing_embeddings="fixed", **settings_).fit(small_corpus)
    tuned = TopicModel(embeddings=aligned, fine_tune_embeddings=True, **settings_).fit(small_corpus)
    found = aligned.found
    np.testing.assert_array_equal(learn.word_embeddings_[found], aligned.vectors[found])
    assert not np.allclose(learn.word_embeddings_[~found], aligned.vectors[~found])
    np.testing.assert_array_equal(fixed.word_embeddings_, aligned.vectors)
    assert not np.allclose(tuned.word_embeddings_[found], aligned.vectors[found])
    assert learn.word_embeddings_.shape == (len(vocab), 8)


def test_estimator_embedding_errors(small_corpus) -> None:
    vocab = small_corpus.vocabulary
    with pytest.raises(ValueError, match="embedding_size=300 but the pretrained embeddings have 8 dimensions"):
        TopicModel(n_topics=3, embedding_size=300, embeddings=np.zeros((len(vocab), 8)), epochs=1).fit(small_corpus)
    with pytest.raises(ValueError, match=r"expected \(V=3072, E\)"):
        TopicModel(n_topics=3, embeddings=np.zeros((10, 8)), epochs=1).fit(small_corpus)
    with pytest.raises(ValueError, match="fine_tune_embeddings=True needs embeddings to start from: pretrained"):
        TopicModel(n_topics=3, fine_tune_embeddings=True, epochs=1).fit(small_corpus)


def test_partially_fixed_rho_gets_gradients_only_on_its_rows() -> None:
    from etm import ETM

    torch.manual_seed(0)
    emb = torch.randn(6, 4)
    model = ETM(2, 6, 8, embeddings=emb, train_embeddings=False, trainable_rows=[1, 4])
    bows = torch.ones(3, 6)
    recon, kld = model(bows, bows / 6)
    (recon + kld).backward()
    assert model.rho.free.grad is not None and model.rho.free.grad.shape == (2, 4)
    assert "rho.fixed" in model.state_dict() and "rho.free" in dict(model.named_parameters())
    np.testing.assert_array_equal(model.rho.weight.detach()[[0, 2, 3, 5]].numpy(), emb[[0, 2, 3, 5]].numpy())
