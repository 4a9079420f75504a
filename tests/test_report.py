"""The HTML report's numbers and page (the browser test is tests/test_report_browser.py).

A model trained briefly on the authors' 20 Newsgroups slice: what the report
computes must agree with the estimator's own methods (coherence, prevalence,
neighbours), its caps must hold, and the page must load nothing from outside.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from etm.estimator import TopicModel
from etm.neighbors import nearest_word_indices, nearest_words
from etm.offline import inline_script, json_script
from etm.plots import embedding_map_points
from etm.report import build_report, write_report
from etm.report.data import representative_documents, snippet


@pytest.fixture(scope="module")
def fitted(small_corpus) -> TopicModel:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 300 small steps: one thread is fastest, and on a loaded machine by far
    try:
        # the mixture decoder: the pyLDAvis checks below were sized on its term-topic table (the product
        # decoder's peaked topics leave pyLDAvis fewer rows than the cap); other report tests use the default
        est = TopicModel(n_topics=6, hidden_size=128, epochs=20, batch_size=100, lr=0.01, device="cpu",
                         decoder="mixture", random_state=1).fit(small_corpus)
    finally:
        torch.set_num_threads(threads)
    assert est.collapse_ is None  # distinct topics, or the checks below would test little
    return est


@pytest.fixture(scope="module")
def built(fitted, small_corpus) -> dict:
    return build_report(fitted, small_corpus, n_words=8, n_documents=4, map_words=30, search_words=300)


def test_numbers_agree_with_the_estimator(fitted, small_corpus, built) -> None:
    metrics = fitted.evaluate(small_corpus, small_corpus)
    assert built["metrics"]["coherence"] == pytest.approx(metrics["coherence"], abs=1e-12)
    assert built["metrics"]["diversity"] == pytest.approx(metrics["diversity"])
    assert built["metrics"]["quality"] == pytest.approx(metrics["quality"], abs=1e-12)
    assert built["metrics"]["perplexity_per_document"] == pytest.approx(metrics["perplexity_per_document"])
    assert built["metrics"]["completion_part"] == "test"
    theta = fitted.transform(small_corpus.train)
    topics = built["topics"]
    assert len(topics) == 6
    np.testing.assert_allclose([t["prevalence"] for t in topics], theta.mean(axis=0), rtol=1e-5)
    assert sum(t["dominant_documents"] for t in topics) == small_corpus.train.n_docs
    for k, topic in enumerate(topics):
        assert [w for w, _ in topic["words"]] == fitted.get_topics(8)[k]
        assert len(topic["documents"]) == 4
        shares = [d["share"] for d in topic["documents"]]
        assert shares == sorted(shares, reverse=True)
        for d in topic["documents"]:
            assert d["share"] == pytest.approx(theta[d["row"], k], abs=1e-3)
            assert d["text"] is None and len(d["words"]) > 0  # the authors' corpus has no raw text: its words
    assert built["corpus"]["sizes"]["documents analysed"] == 1500


def test_search_answers_what_nearest_words_says(fitted, built) -> None:
    search = built["search"]
    assert search["searchable"] == 300
    top = {w for t in fitted.get_topics(8) for w in t}
    assert top <= set(search["words"][: search["searchable"]])  # every topic's top words are searchable
    for i in (0, 17, 299):
        word = search["words"][i]
        near = search["near"][i]
        expected = nearest_words(word, fitted.word_embeddings_, fitted.vocabulary_, 8)
        assert [search["words"][j] for j in near[0::2]] == [w for w, _ in expected]
        np.testing.assert_allclose(np.array(near[1::2]) / 1000, [s for _, s in expected], atol=1e-3)
        col = fitted.vocabulary_.index(word)
        weights = fitted.topic_word_[:, col]
        assert search["topics"][i][0::3] == list(np.argsort(-weights, kind="stable")[:3])
        best = int(np.argmax(weights))
        assert search["topics"][i][2] == int((fitted.topic_word_[best] > weights[best]).sum()) + 1  # its rank


def test_nearest_word_indices_matches_nearest_words(fitted) -> None:
    words = [0, 5, 1000, len(fitted.vocabulary_) - 1]
    idx, sims = nearest_word_indices(words, fitted.word_embeddings_, 12, block=3)
    for row, w in enumerate(words):
        expected = nearest_words(fitted.vocabulary_[w], fitted.word_embeddings_, fitted.vocabulary_, 12)
        assert [fitted.vocabulary_[j] for j in idx[row]] == [x for x, _ in expected]
        np.testing.assert_allclose(sims[row], [s for _, s in expected], atol=1e-12)
    with pytest.raises(ValueError, match=r"word indices must be in \[0, 3072\), got range \[0, 3072\]"):
        nearest_word_indices([0, 3072], fitted.word_embeddings_, 3)


def test_the_map_is_capped_and_keeps_each_topics_best_words(fitted, built) -> None:
    unique = {w for words in fitted.get_topics(8) for w in words}
    assert len(built["map"]["words"]) == min(30, len(unique)) and len(built["map"]["topics_xy"]) == 6
    assert set(built["map"]["words"]) <= unique
    picked, owners, words_xy, _ = embedding_map_points(
        fitted.word_embeddings_, fitted.topic_embeddings_, fitted.vocabulary_, topic_word=fitted.topic_word_,
        words_per_topic=8, max_words=6)
    best = [int(np.argmax(fitted.topic_word_[k])) for k in range(6)]
    assert words_xy.shape == (len(picked), 2)
    firsts = list(dict.fromkeys(best))
    assert len(picked) == 6 and picked[: len(firsts)] == firsts  # rank 1 of every topic comes first
    assert owners[: len(firsts)] == sorted({best.index(w) for w in firsts})


def test_intertopic_distances_are_pyldavis_own(fitted) -> None:
    from pyLDAvis._prepare import js_PCoA

    from etm.report.data import jensen_shannon_distances, principal_coordinates

    topic_word = fitted.topic_word_.astype(np.float64)  # pyLDAvis's scipy entropy renormalises in float64
    beta = topic_word / topic_word.sum(axis=1, keepdims=True)
    ours = principal_coordinates(jensen_shannon_distances(beta))
    theirs = np.real(js_PCoA(beta))
    np.testing.assert_allclose(np.abs(ours), np.abs(theirs), atol=1e-6)  # the same up to each axis's sign


def test_the_pyldavis_view_is_capped(fitted, small_corpus) -> None:
    from etm.report.data import ldavis_prepared

    theta = fitted.transform(small_corpus.train)
    full = ldavis_prepared(fitted.topic_word_, theta, small_corpus.train.counts, fitted.vocabulary_)
    small = ldavis_prepared(fitted.topic_word_, theta, small_corpus.train.counts, fitted.vocabulary_,
                            max_words=500, max_rows=300)
    terms = small.topic_info.loc[small.topic_info["Category"] != "Default", "Term"].nunique()
    assert len(small.token_table) == max(300, terms) < len(full.token_table)
    assert set(small.token_table["Term"]) == set(small.topic_info["Term"])  # every listed term keeps a row
    assert small.topic_info["Term"].nunique() <= 500
    np.testing.assert_allclose(small.topic_coordinates[["x", "y"]], full.topic_coordinates[["x", "y"]])


def test_representative_documents_prefer_long_ones() -> None:
    theta = np.array([[0.9, 0.1], [0.6, 0.4], [0.99, 0.01], [0.2, 0.8]])
    lengths = np.array([50, 40, 3, 12])
    assert representative_documents(theta, lengths, 2) == [[0, 1], [3, 1]]  # the 3-word document is passed over
    assert representative_documents(theta, np.array([50, 2, 3, 1]), 2)[0] == [2, 0]  # too few long ones: all


def test_snippet_and_inline_guards() -> None:
    assert snippet("a  b\n\nc") == "a b c"
    cut = snippet("word " * 200, limit=50)
    assert cut.endswith(" …") and len(cut) <= 52
    assert "\\u003c/script\\u003e" in json_script("x", {"w": "</script><b>"})
    with pytest.raises(ValueError, match="would change how the inline <script> element is parsed"):
        inline_script("var s = '</script>';")
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        json_script("x", {"v": float("nan")})


def test_the_page_is_self_contained(fitted, small_corpus, tmp_path: Path) -> None:
    path = write_report(fitted, tmp_path / "report.html", small_corpus, n_words=8, map_words=30,
                        search_words=300, title="Slice of 20NG")
    page = path.read_text(encoding="utf-8")
    assert "<title>Slice of 20NG</title>" in page
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", page)  # nothing loaded from anywhere
    assert not re.search(r"<link[^>]*href=", page)
    assert page.count('<article class="topic"') == 6
    for k in range(6):
        assert f'id="topic-{k}"' in page
    data = json.loads(re.search(r'<script type="application/json" id="etm-data">(.*?)</script>', page,
                                flags=re.S).group(1))
    assert set(data["figures"]) == {"map-figure", "training-figure", "prevalence-figure", "overview-figure"}
    assert 'id="ldavis"' in page and "new LDAvis(" in page
    assert 4.5e6 < path.stat().st_size < 7e6  # plotly.js (4.8 MB), d3 and LDAvis, then a little data


def test_without_a_corpus_the_page_says_what_is_missing(fitted, tmp_path: Path) -> None:
    page = fitted.report(tmp_path / "bare.html", map_words=20, search_words=100).read_text(encoding="utf-8")
    assert "No corpus was given" in page and 'id="ldavis"' not in page and 'id="prevalence-figure"' not in page
    assert page.count('<article class="topic"') == 6


def test_texts_give_their_own_snippets(newsgroup_records, tmp_path: Path) -> None:
    from etm.preprocessing import Preprocessor

    texts = [r["text"] for r in newsgroup_records[:400]]
    est = TopicModel(4, hidden_size=32, embedding_size=16, epochs=2, device="cpu",
                     preprocessor=Preprocessor(min_df=3, max_df=0.5, strip_newsgroup=True)).fit(texts)
    report = build_report(est, None)
    assert report["corpus"] is None and "coherence" not in report["metrics"]
    page = est.report(tmp_path / "texts.html", texts, n_documents=2, ldavis=False).read_text(encoding="utf-8")
    assert page.count('class="snippet"') == 8 and "<mark>" in page


def test_bad_arguments_are_named(fitted, small_corpus, tmp_path: Path) -> None:
    import scipy.sparse as sp

    from etm.corpus import Corpus

    with pytest.raises(ValueError, match=r"^n_words must be a positive integer, got 0$"):
        build_report(fitted, n_words=0)
    with pytest.raises(ValueError, match="unknown projection 'umap'"):
        build_report(fitted, method="umap")
    with pytest.raises(ValueError, match="the model is not fitted"):
        build_report(TopicModel(3))
    with pytest.raises(ValueError, match=r"documents has 2 texts but the corpus has 1500 training documents"):
        build_report(fitted, small_corpus, documents=["a", "b"], ldavis=False)
    raw = tmp_path / "raw.jsonl"
    raw.write_text('{"text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"none of the documents of .*raw.jsonl has the id of a corpus document "
                                         r"\(e.g. '.*' in the corpus, 'line 1' in the file\): read it with the "
                                         r"--id-field"):
        build_report(fitted, small_corpus, documents=raw, ldavis=False)
    other = Corpus(sp.csr_matrix(np.ones((2, 4))), ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="corpus has 4 words in its vocabulary, model vocabulary has 3072 words"):
        build_report(fitted, other)


def test_a_large_model_stays_under_10_mb(tmp_path: Path) -> None:
    """K=100 topics, V=50,000 words: the default caps keep the page under 10 MB (benchmarks/report_size.py
    measures a trained model of this size; a barely trained one has flat topics, the worst case for pyLDAvis)."""
    import scipy.sparse as sp

    from etm.corpus import Corpus

    rng = np.random.default_rng(0)
    n_docs, n_words = 4000, 50_000
    vocab = [f"w{i:05d}{'abcdefgh'[i % 8] * (i % 5)}" for i in range(n_words)]  # 6 to 10 letters, like words
    zipf = 1.0 / np.arange(1, n_words + 1)
    counts = sp.random(n_docs, n_words, density=0.002, random_state=rng, format="csr",
                       data_rvs=lambda n: rng.integers(1, 4, size=n).astype(np.float32))
    counts = counts + sp.csr_matrix(  # a Zipf background so frequencies differ as in text
        (np.ones(n_docs * 20, dtype=np.float32),
         (np.repeat(np.arange(n_docs), 20), rng.choice(n_words, size=n_docs * 20, p=zipf / zipf.sum()))),
        shape=(n_docs, n_words))
    corpus = Corpus(sp.csr_matrix(counts), vocab, doc_ids=[f"doc {d}" for d in range(n_docs)]).split(
        valid_size=0.05, test_size=0.05, random_state=0)
    est = TopicModel(100, embedding_size=32, hidden_size=64, epochs=1, batch_size=1000, device="cpu",
                     random_state=0).fit(corpus)
    path = write_report(est, tmp_path / "large.html", corpus)
    assert path.stat().st_size < 10_000_000
    page = path.read_text(encoding="utf-8")
    assert page.count('<article class="topic"') == 100
    data = json.loads(re.search(r'id="etm-data">(.*?)</script>', page, flags=re.S).group(1))
    assert data["search"]["searchable"] == 5000 and len(data["figures"]["map-figure"]["data"][0]["text"]) <= 2000
