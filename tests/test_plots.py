"""Figures and the pyLDAvis export, on a model trained on the authors' 20 Newsgroups."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from etm.cli import main
from etm.estimator import TopicModel


@pytest.fixture(scope="module")
def fitted(small_corpus, tmp_path_factory) -> tuple[TopicModel, Path]:
    est = TopicModel(n_topics=6, hidden_size=64, epochs=4, batch_size=500, lr=0.01, device="cpu")
    est.fit(small_corpus)
    path = tmp_path_factory.mktemp("plots") / "model"
    est.save(path)
    return est, path


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_estimator_figures(fitted, small_corpus, tmp_path: Path) -> None:
    est, _ = fitted
    width, height = _png_size(est.plot_topics(tmp_path / "topics.png", n_words=8))
    assert width > 600 and height > 200
    svg = est.plot_topics(tmp_path / "topics.svg", topics=[0, 2]).read_text(encoding="utf-8")
    for word in est.get_topics(3)[2]:
        assert f">{word}<" in svg  # the bars are labelled with the topic's top words
    assert ">topic_2<" in svg and ">topic_1<" not in svg
    svg = est.plot_training(tmp_path / "training.svg").read_text(encoding="utf-8")
    assert "validation perplexity" in svg and "KL per document" in svg
    svg = est.plot_embeddings(tmp_path / "map.svg").read_text(encoding="utf-8")
    assert est.get_topics(1)[0][0] in svg and "PCA" in svg
    assert _png_size(est.plot_embeddings(tmp_path / "map_tsne.png", method="tsne", words_per_topic=3))[0] > 300
    svg = est.plot_prevalence(small_corpus.test, tmp_path / "prev.svg").read_text(encoding="utf-8")
    assert "mean topic proportion over 300 documents" in svg
    with pytest.raises(ValueError, match="unsupported figure file"):
        est.plot_topics(tmp_path / "topics.jpg")
    with pytest.raises(ValueError, match=r"^n_words must be a positive integer, got 0$"):
        est.plot_topics(tmp_path / "topics.png", n_words=0)
    with pytest.raises(ValueError, match="unknown projection 'umap'"):
        est.plot_embeddings(tmp_path / "m.png", method="umap")


def test_pyldavis_export(fitted, small_corpus, tmp_path: Path) -> None:
    est, _ = fitted
    written = est.export_pyldavis(small_corpus.test, tmp_path)
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    counts = small_corpus.test.counts
    assert data["vocab"] == est.vocabulary_ and data["topic_names"] == [f"topic_{k}" for k in range(6)]
    assert np.asarray(data["topic_term_dists"]).shape == (6, len(est.vocabulary_))
    np.testing.assert_allclose(np.asarray(data["doc_topic_dists"]).sum(axis=1), 1.0, rtol=1e-9)
    assert sum(data["term_frequency"]) == int(counts.sum()) == sum(data["doc_lengths"])
    html = written["html"].read_text(encoding="utf-8")
    assert "LDAvis" in html and est.get_topics(1)[0][0] in html


def test_cli_plot(fitted, shared_data: Path, tmp_path: Path, capsys) -> None:
    _, model = fitted
    out = tmp_path / "figs"
    code = main(["plot", str(model), "-o", str(out), "--corpus", str(shared_data / "20ng-etm"), "--ldavis", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert set(result) == {"topics", "embeddings", "training", "prevalence", "ldavis_json", "ldavis_html"}
    for name in ("topics.png", "embeddings.png", "training.png", "prevalence.png", "ldavis.json", "ldavis.html"):
        assert (out / name).stat().st_size > 1000, name
    assert main(["plot", str(model), "-o", str(out), "--ldavis"]) == 1
    assert "--ldavis needs --corpus" in capsys.readouterr().err
