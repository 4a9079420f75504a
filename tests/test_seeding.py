"""Seeded topics: the seeds file, the mechanism, names everywhere, labelling."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from etm.cli import main
from etm.estimator import TopicModel
from etm.seeding import SeedPrior, SeedTopics, read_seed_file

ROOT = Path(__file__).resolve().parents[1]


def test_seed_file_json_and_yaml(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"space": ["nasa", "orbit"], "guns": ["gun"]}', encoding="utf-8")
    (tmp_path / "s.yaml").write_text("space:\n  - nasa\n  - orbit\nguns: [gun]\n", encoding="utf-8")
    for name in ("s.json", "s.yaml"):
        seeds = read_seed_file(tmp_path / name)
        assert seeds.names == ["space", "guns"] and seeds.words == [["nasa", "orbit"], ["gun"]]
    shipped = read_seed_file(ROOT / "examples" / "seeds" / "20ng.json")
    assert len(shipped) == 20 and max(len(w) for w in shipped.words) <= 8


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"space": ["nasa",\n "orbit"\n', r"bad.json, line 3, column 1: not valid JSON"),
        ("dup.json", '{"space": ["nasa"],\n "space": ["orbit"]}', r"dup.json, line 2: topic name 'space' is"),
        ("bad.yaml", "space:\n  - nasa\n - orbit\n", r"bad.yaml, line 3: not valid YAML"),
        ("dup.yaml", "space: [nasa]\nguns: [gun]\nspace: [orbit]\n", r"dup.yaml, line 3: topic name 'space' is"),
        ("empty.json", '{"space": []}', r"empty\.json, line 1: topic 'space' has an empty seed list"),
        ("empty2.json", '{\n "space": ["nasa"],\n "guns": []\n}', r"empty2\.json, line 3: topic 'guns' has an empty"),
        ("empty.yaml", "space: [nasa]\n\nguns: []\n", r"empty\.yaml, line 3: topic 'guns' has an empty seed list"),
        ("null.yaml", "space: [nasa]\nguns:\n", r"null\.yaml, line 2: topic 'guns' must have a list of seed words"),
        ("list.json", '["nasa"]', r"seeds must map topic names to lists of words"),
        ("str.json", '{"space": "nasa"}', r"str\.json, line 1: topic 'space' must have a list of seed words"),
        ("num.json", '{"space": ["nasa",\n 3]}', r"num\.json, line 1: topic 'space' has a seed that is not a"),
    ],
)
def test_bad_seed_files(tmp_path: Path, name: str, content: str, message: str) -> None:
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises((ValueError, TypeError), match=message):
        read_seed_file(tmp_path / name)


def test_shared_seed_word_warns_and_missing_words_are_reported(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        seeds = SeedTopics.from_mapping({"a": ["x", "y"], "b": ["y", "z"]})
    assert "the seed word 'y' seeds 2 topics (a, b)" in caplog.text
    resolved = seeds.resolve(["x", "y", "w"])
    assert resolved.indices == [[0, 1], [1]] and resolved.missing == {"b": ["z"]}
    with pytest.raises(ValueError, match="seeded topic 'c' has none of its seed words"):
        SeedTopics.from_mapping({"c": ["nope"]}).resolve(["x"])


def test_seed_prior_is_the_dirichlet_pseudo_count_term() -> None:
    class Fixed:
        def __init__(self, beta: torch.Tensor) -> None:
            self.beta = beta

        def get_beta(self) -> torch.Tensor:
            return self.beta

    beta = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    prior = SeedPrior([[0, 1], [2]], np.array([10.0, 4.0, 2.0]), n_documents=5, strength=0.5)
    expected = -0.5 * (10 * np.log(0.5) + 4 * np.log(0.3) + 2 * np.log(0.8)) / 5
    assert float(prior(Fixed(beta), 0.3)) == pytest.approx(expected, rel=1e-5)
    decaying = SeedPrior([[0]], np.array([1.0, 1.0, 1.0]), 1, strength=2.0, schedule="decay")
    assert decaying.strength_at(0.0) == 2.0 and decaying.strength_at(0.75) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown seed schedule"):
        SeedPrior([[0]], np.ones(3), 1, schedule="cyclic")


def test_document_prior_is_the_kl_to_a_shifted_prior() -> None:
    import scipy.sparse as sp

    from etm.model import SparseBatch

    counts = sp.csr_matrix(np.array([[2, 1, 0, 5], [0, 0, 3, 0]], dtype=np.float32))
    prior = SeedPrior([[0, 1], [2]], np.ones(4), 2, strength=0.0, doc_strength=0.7)
    batch = SparseBatch.from_scipy(counts)
    np.testing.assert_array_equal(prior.seed_counts(batch).numpy(), [[3, 0], [0, 3]])
    np.testing.assert_array_equal(prior.seed_counts(torch.from_numpy(counts.toarray())).numpy(), [[3, 0], [0, 3]])
    mu = torch.tensor([[0.3, -0.2, 0.1], [0.0, 0.5, -1.0]])  # 2 seeded topics + 1 free
    logsigma = torch.zeros_like(mu)
    m = torch.zeros_like(mu)
    m[:, :2] = 0.7 * torch.log1p(prior.seed_counts(batch))
    def kl(mean: torch.Tensor) -> torch.Tensor:
        q = torch.distributions.Normal(mu, torch.exp(0.5 * logsigma))
        return torch.distributions.kl_divergence(q, torch.distributions.Normal(mean, 1.0)).sum(1).mean()
    assert float(prior(None, 0.0, batch, mu)) == pytest.approx(float(kl(m) - kl(torch.zeros_like(mu))), rel=1e-5)


def test_the_centred_document_prior_is_the_kl_to_a_prior_shifted_by_the_count_above_the_mean() -> None:
    import scipy.sparse as sp

    from etm.model import SparseBatch

    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(0.4, size=(30, 6)).astype(np.float32))
    topics = [[0, 1], [2], [1, 4]]  # word 1 is a seed word of two topics
    prior = SeedPrior(topics, np.ones(6), 30, strength=0.0, doc_strength=0.7)
    centres = prior.centre_on([counts[:11], counts[11:]])  # in two row blocks, as a corpus streams them
    dense = counts.toarray()
    direct = np.stack([np.log1p(dense[:, t].sum(axis=1)) for t in topics], axis=1)  # (D, S)
    np.testing.assert_allclose(centres, direct.mean(axis=0), rtol=1e-6)
    mu = torch.from_numpy(rng.normal(size=(30, 5)).astype(np.float32))  # 3 seeded topics + 2 free
    m = torch.zeros_like(mu)
    m[:, :3] = 0.7 * torch.from_numpy((direct - direct.mean(axis=0)).astype(np.float32))
    def kl(mean: torch.Tensor) -> torch.Tensor:
        q = torch.distributions.Normal(mu, 1.0)
        return torch.distributions.kl_divergence(q, torch.distributions.Normal(mean, 1.0)).sum(1).mean()
    term = float(prior(None, 0.0, SparseBatch.from_scipy(counts), mu))
    assert term == pytest.approx(float(kl(m) - kl(torch.zeros_like(mu))), rel=1e-5)
    assert (m[:, :3] < 0).any() and (m[:, :3] > 0).any()  # documents without seed words are pushed down
    with pytest.raises(ValueError, match="no training documents"):
        SeedPrior(topics, np.ones(6), 30, doc_strength=0.7).centre_on([])


SEEDS = {"space": ["space", "nasa", "orbit", "launch"], "religion": ["god", "jesus", "church", "bible"],
         "hardware": ["drive", "card", "scsi", "disk"]}


def seed_documents(vocabulary, seeds=SEEDS):
    """One document per seeded topic, made of its seed words three times each: (len(seeds), V) CSR."""
    import scipy.sparse as sp

    index = {w: i for i, w in enumerate(vocabulary)}
    docs = sp.lil_matrix((len(seeds), len(index)))
    for row, words in enumerate(seeds.values()):
        for w in words:
            docs[row, index[w]] = 3
    return docs.tocsr()


@pytest.fixture(scope="module")
def seeded(small_corpus) -> TopicModel:
    # the default recipe with the default batch size (20 steps an epoch) and a shorter run: 400 steps. A 90-step
    # schedule (30 epochs of 500 documents) was too short for the cosine recipe: a document of 'hardware' seed
    # words came out as 'space'
    est = TopicModel(n_topics=8, seed_topics=SEEDS, seed_strength=1.0, seed_doc_prior=1.0, hidden_size=64,
                     epochs=20, lr=0.01, device="cpu")
    return est.fit(small_corpus)


def test_seeded_topics_keep_their_seed_words_and_names(seeded, small_corpus) -> None:
    assert seeded.topic_names_ == ["space", "religion", "hardware"] + [f"free_{j}" for j in range(5)]
    topics = seeded.get_topics(10)
    for k, words in enumerate(SEEDS.values()):
        assert len(set(words) & set(topics[k])) >= 2, (k, topics[k])
    unseeded = TopicModel(n_topics=8, hidden_size=64, epochs=30, batch_size=500, lr=0.01, device="cpu")
    unseeded.fit(small_corpus)
    assert unseeded.topic_names_[0] == "topic_0" and unseeded.n_seeded_topics_ == 0
    recovered = sum(len(set(w) & set(topics[k])) for k, w in enumerate(SEEDS.values()))
    best_unseeded = sum(max(len(set(w) & set(t)) for t in unseeded.get_topics(10)) for w in SEEDS.values())
    assert recovered > best_unseeded
    assert seeded.history_[0]["prior"] > 0


def test_predict_labels_seeded_topics(seeded, small_corpus) -> None:
    docs = seed_documents(small_corpus.vocabulary)
    assert seeded.decoder_ == "product"  # the default, seeded or not
    labels, share = seeded.predict_with_proportion(docs)
    assert list(labels) == ["space", "religion", "hardware"] and (share > 0.5).all()
    # a threshold labels the documents whose share reaches it and no others
    cut = float(np.sort(share)[1])
    expected = [name if p >= cut else "none" for name, p in zip(labels, share)]
    assert list(seeded.predict(docs, threshold=cut)) == expected and expected.count("none") == 1
    with pytest.raises(ValueError, match="threshold must be in"):
        seeded.predict(docs, threshold=2.0)


def test_a_seeded_mixture_model_keeps_its_seed_words_and_labels_right(small_corpus) -> None:
    """The paper's decoder takes the seed prior on its beta (the default product decoder: on its ``get_beta``)."""
    est = TopicModel(n_topics=8, seed_topics=SEEDS, seed_strength=1.0, seed_doc_prior=1.0, hidden_size=64,
                     epochs=20, lr=0.01, device="cpu", decoder="mixture").fit(small_corpus)
    assert est.decoder_ == "mixture" and est.temperature_ == 0.1
    topics = est.get_topics(10)
    for k, words in enumerate(SEEDS.values()):
        assert len(set(words) & set(topics[k])) >= 2, (k, topics[k])
    labels, share = est.predict_with_proportion(seed_documents(small_corpus.vocabulary))
    assert list(labels) == list(SEEDS) and (share > 0.5).all()


def test_documents_without_vocabulary_words_are_labelled_none(seeded, small_corpus) -> None:
    import scipy.sparse as sp

    index = {w: i for i, w in enumerate(small_corpus.vocabulary)}
    docs = sp.lil_matrix((3, len(index)))
    for w in SEEDS["space"]:
        docs[0, index[w]] = 3
    docs = docs.tocsr()  # rows 1 and 2 hold no word at all
    labels, share = seeded.predict_with_proportion(docs)
    assert list(labels) == ["space", "none", "none"] and share[0] > 1 / 8 and list(share[1:]) == [0.0, 0.0]
    theta, lengths, report = seeded.transform_with_lengths(docs)
    assert lengths.tolist() == [12.0, 0.0, 0.0] and report["empty_documents"] == 2
    unlabelled, _ = seeded.label_theta(theta)  # without lengths: the encoder's output for an empty input
    assert unlabelled[1] == unlabelled[2] != "none"
    with pytest.raises(ValueError, match=r"lengths has 2 entries but theta has 3 rows"):
        seeded.label_theta(theta, lengths=lengths[:2])


def test_seeded_errors(small_corpus) -> None:
    with pytest.raises(ValueError, match="3 seeded topics but n_topics=2"):
        TopicModel(n_topics=2, seed_topics=SEEDS, epochs=1).fit(small_corpus)
    with pytest.raises(ValueError, match="n_free_topics only applies with seed_topics"):
        TopicModel(n_free_topics=3, epochs=1).fit(small_corpus)
    est = TopicModel(seed_topics=SEEDS, n_free_topics=2, hidden_size=16, epochs=1, device="cpu").fit(small_corpus)
    assert est.model_.num_topics == 5


@pytest.fixture(scope="module")
def seeded_cli(news_workspace) -> Path:
    root = news_workspace
    (root / "seeds.yaml").write_text("space: [space, nasa, orbit]\nreligion: [god, jesus, church]\n"
                                     "computers: [windows, drive, card, nothere]\n", encoding="utf-8")
    # raw text + seeds -> model in one command (the corpus is prepared on the fly into model/corpus)
    assert main(["train", str(root / "news.jsonl.gz"), "-o", str(root / "model"), "--seeds", str(root / "seeds.yaml"),
                 "--split-field", "split", "--id-field", "id", "--strip-newsgroup", "--min-df", "3", "--max-df",
                 "0.5", "--free-topics", "3", "--t-hidden-size", "32", "--epochs", "4", "--batch_size", "200",
                 "--lr", "0.01", "--quiet", "--device", "cpu"]) == 0
    return root


def test_cli_two_commands_to_a_labelled_csv(seeded_cli: Path, capsys) -> None:
    root = seeded_cli
    capsys.readouterr()
    assert main(["label", str(root / "model"), str(root / "news.jsonl.gz"), "--id-field", "id", "-o",
                 str(root / "labels.csv"), "--threshold", "0.2"]) == 0
    with open(root / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["document", "label", "proportion", "space", "religion", "computers"]
    assert len(rows) == 800 and rows[0]["document"].startswith("train/")
    for row in rows:
        best = max(("space", "religion", "computers"), key=lambda n: float(row[n]))
        assert row["label"] == (best if float(row[best]) >= 0.2 else "none")
        assert float(row["proportion"]) == pytest.approx(float(row[best]), rel=1e-5)
    capsys.readouterr()
    assert main(["label", str(root / "model"), str(root / "news.jsonl.gz"), "-o", str(root / "labels.json"),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    records = json.loads((root / "labels.json").read_text(encoding="utf-8"))
    assert summary["documents"] == len(records) == 800 and set(records[0]["proportions"]) == {
        "space", "religion", "computers"}


def test_cli_label_documents_without_vocabulary_words_get_none(seeded_cli: Path, tmp_path, capsys) -> None:
    docs = tmp_path / "docs.jsonl"
    texts = {"a": "nasa orbit space launch shuttle", "b": "zzzz qqqq", "c": "", "d": "god jesus church bible"}
    docs.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in texts.items()), encoding="utf-8")
    capsys.readouterr()
    assert main(["label", str(seeded_cli / "model"), str(docs), "--id-field", "id", "-o", str(tmp_path / "l.csv"),
                 "--threads", "1", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["documents"] == 4 and summary["empty_documents"] == 2 and summary["labels"]["none"] == 2
    with open(tmp_path / "l.csv", newline="", encoding="utf-8") as fh:
        rows = {row["document"]: row for row in csv.DictReader(fh)}
    assert list(rows) == ["a", "b", "c", "d"] and "split" not in rows["a"]
    for doc in ("a", "d"):  # documents with vocabulary words keep their best seeded topic
        assert rows[doc]["label"] in ("space", "religion", "computers") and float(rows[doc]["proportion"]) > 0
    for doc in ("b", "c"):
        assert rows[doc]["label"] == "none" and rows[doc]["proportion"] == "0"
        assert [rows[doc][n] for n in ("space", "religion", "computers")] == ["0", "0", "0"]
    assert main(["label", str(seeded_cli / "model"), str(docs), "--id-field", "id", "-o", str(tmp_path / "l.csv")]) == 0
    assert "(2 of the 'none' had no word of the model's vocabulary)" in capsys.readouterr().out


def test_cli_label_of_a_corpus_directory_keeps_its_ids_and_splits(seeded_cli: Path, tmp_path, capsys) -> None:
    from etm.corpus import PreparedCorpus

    corpus = PreparedCorpus.load(seeded_cli / "model" / "corpus")
    capsys.readouterr()
    assert main(["label", str(seeded_cli / "model"), str(seeded_cli / "model" / "corpus"), "-o",
                 str(tmp_path / "l.json"), "--json"]) == 0
    records = json.loads((tmp_path / "l.json").read_text(encoding="utf-8"))
    expected = [(str(i), name) for name, part in corpus.parts() for i in part.doc_ids]
    assert [(r["document"], r["split"]) for r in records] == expected
    assert {split for _, split in expected} == {"train", "valid", "test"}
    assert main(["label", str(seeded_cli / "model"), str(seeded_cli / "model" / "corpus"), "-o",
                 str(tmp_path / "l.tsv")]) == 0
    header, first = (tmp_path / "l.tsv").read_text(encoding="utf-8").splitlines()[:2]
    assert header.split("\t")[:4] == ["document", "split", "label", "proportion"]
    assert first.split("\t")[:2] == list(expected[0])


def test_cli_label_refuses_an_unknown_output_format_before_inference(seeded_cli: Path, tmp_path, capsys) -> None:
    capsys.readouterr()
    assert main(["label", str(seeded_cli / "model"), str(tmp_path / "missing.jsonl"), "-o",
                 str(tmp_path / "l.xlsx")]) == 1
    assert "unsupported output" in capsys.readouterr().err
    (tmp_path / "blank.txt").write_text("")
    assert main(["label", str(seeded_cli / "model"), str(tmp_path / "blank.txt"), "-o", str(tmp_path / "l.csv")]) == 1
    assert "blank.txt has no documents to label" in capsys.readouterr().err


def test_cli_names_everywhere(seeded_cli: Path, capsys) -> None:
    root = seeded_cli
    capsys.readouterr()
    assert main(["topics", str(root / "model")]) == 0
    out = capsys.readouterr().out
    assert "space    :" in out and "free_2   :" in out
    assert main(["transform", str(root / "model"), str(root / "news.jsonl.gz"), "-o", str(root / "theta.csv")]) == 0
    header = (root / "theta.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "document,space,religion,computers,free_0,free_1,free_2"
    assert main(["evaluate", str(root / "model"), str(root / "model" / "corpus")]) == 0
    assert "document-completion perplexity on test halves" in capsys.readouterr().out
    config = json.loads((root / "model" / "config.json").read_text(encoding="utf-8"))
    assert config["seeding"]["report"]["missing"]["computers"] == ["nothere"]
    assert main(["neighbors", str(root / "model"), "--topics", "-n", "3"]) == 0
    assert capsys.readouterr().out.startswith("space: ")
    est = TopicModel.load(root / "model")
    svg = est.plot_topics(root / "t.svg").read_text(encoding="utf-8")
    assert ">religion<" in svg and ">free_1<" in svg
