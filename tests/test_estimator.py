"""TopicModel: the scikit-learn contract, on raw 20 Newsgroups text and on bags of words."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from etm import Preprocessor, TopicModel

SMALL = dict(hidden_size=32, embedding_size=16, epochs=3, batch_size=200, lr=0.01, device="cpu")


@pytest.fixture(scope="module")
def texts(newsgroup_records) -> tuple[list[str], list[str]]:
    train = [r["text"] for r in newsgroup_records if r["split"] == "train"]
    test = [r["text"] for r in newsgroup_records if r["split"] == "test"]
    return train, test


@pytest.fixture(scope="module")
def fitted(texts) -> TopicModel:
    pre = Preprocessor(min_df=3, max_df=0.5, strip_newsgroup=True)
    return TopicModel(6, preprocessor=pre, random_state=3, **SMALL).fit(texts[0])


def test_fit_on_raw_text_sets_fitted_attributes(fitted: TopicModel) -> None:
    V = len(fitted.vocabulary_)
    assert V > 500
    assert fitted.topic_word_.shape == (6, V)
    assert np.allclose(fitted.topic_word_.sum(1), 1, atol=1e-4)
    assert fitted.topic_embeddings_.shape == (6, 16)
    assert fitted.word_embeddings_.shape == (V, 16)
    assert fitted.n_iter_ == 3 and len(fitted.history_) == 3
    assert fitted.random_state_ == 3
    assert fitted.valid_perplexity_ is not None and fitted.valid_perplexity_ > 1
    assert fitted.preprocessor_ is not None and fitted.preprocessor is not fitted.preprocessor_
    assert "from" not in fitted.vocabulary_ or fitted.vocabulary_.count("from") == 1


def test_transform_is_deterministic_and_rows_are_distributions(fitted: TopicModel, texts) -> None:
    theta = fitted.transform(texts[1][:50])
    assert theta.shape == (50, 6) and theta.dtype == np.float32
    assert np.allclose(theta.sum(1), 1, atol=1e-5)
    assert np.array_equal(theta, fitted.transform(texts[1][:50]))


def test_unknown_words_are_counted(fitted: TopicModel) -> None:
    theta, report = fitted.transform_with_report(["zzzqqq xxyyzz space shuttle", "qwertyuiop"])
    assert report["unknown_tokens"] >= 3
    assert report["empty_documents"] == 1
    assert theta.shape == (2, 6)


def test_get_topics_and_evaluate(fitted: TopicModel, texts) -> None:
    topics = fitted.get_topics(7)
    assert len(topics) == 6 and all(len(t) == 7 for t in topics)
    assert all(w in fitted.vocabulary_ for t in topics for w in t)
    scores = fitted.evaluate(texts[0], completion=texts[1])
    assert -1 <= scores["coherence"] <= 1
    assert 0 < scores["diversity"] <= 1
    assert scores["quality"] == pytest.approx(scores["coherence"] * scores["diversity"])
    assert scores["perplexity_per_document"] > 1 and scores["perplexity_per_token"] > 1
    assert fitted.score(texts[1]) == pytest.approx(-fitted.perplexity(texts[1]))
    for n in (0, -2):
        with pytest.raises(ValueError, match=rf"^n must be a positive integer, got {n}$"):
            fitted.get_topics(n)


def test_save_load_round_trip(fitted: TopicModel, texts, tmp_path) -> None:
    fitted.save(tmp_path / "model")
    loaded = TopicModel.load(tmp_path / "model", device="cpu")
    assert loaded.vocabulary_ == fitted.vocabulary_
    assert loaded.get_params()["n_topics"] == 6
    assert np.array_equal(loaded.transform(texts[1][:20]), fitted.transform(texts[1][:20]))
    assert loaded.history_ == fitted.history_


def test_save_load_keeps_what_fit_resolved_the_automatic_settings_to(fitted: TopicModel, tmp_path) -> None:
    """kl_weight=None etc. are resolved at fit (``kl_weight_``...); a loaded model reports the same values."""
    fitted.save(tmp_path / "model")
    loaded = TopicModel.load(tmp_path / "model", device="cpu")
    names = ("decoder_", "temperature_", "kl_weight_", "hidden_size_", "ecr_weight_", "corpus_embeddings_",
             "batch_size_", "epochs_", "training_seconds_", "collapse_", "best_epoch_", "valid_perplexity_")
    assert {n: getattr(loaded, n) for n in names} == {n: getattr(fitted, n) for n in names}
    assert fitted.kl_weight is None and fitted.kl_weight_ == 0.05 and fitted.decoder_ == "product"
    assert loaded.device_ == "cpu"
    path = tmp_path / "model" / "config.json"  # a model saved before these were recorded
    config = json.loads(path.read_text(encoding="utf-8"))
    del config["resolved"]
    path.write_text(json.dumps(config), encoding="utf-8")
    old = TopicModel.load(tmp_path / "model", device="cpu")
    assert (old.decoder_, old.temperature_, old.hidden_size_) == ("product", 0.5, 32)  # read off the network
    assert old.kl_weight_ is None and old.ecr_weight_ is None and old.corpus_embeddings_ is None


def test_save_load_restores_the_preprocessor_parameter(fitted: TopicModel, tmp_path, caplog) -> None:
    fitted.save(tmp_path / "model")
    with caplog.at_level(logging.WARNING, logger="etm"):
        loaded = TopicModel.load(tmp_path / "model", device="cpu")
    assert "ignoring unknown estimator settings" not in caplog.text and not caplog.records
    restored = loaded.get_params()["preprocessor"]
    assert isinstance(restored, Preprocessor) and not hasattr(restored, "vocabulary_")
    assert restored.settings() == fitted.preprocessor.settings()
    assert restored.min_df == 3 and restored.max_df == 0.5 and restored.strip_newsgroup
    again = clone(loaded)
    assert again.preprocessor.settings() == fitted.preprocessor.settings()
    assert again.get_params(deep=True)["preprocessor__min_df"] == 3


def test_load_of_models_saved_with_preprocessor_keys_does_not_warn(fitted: TopicModel, tmp_path, caplog) -> None:
    fitted.save(tmp_path / "model")
    path = tmp_path / "model" / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))  # as etm wrote it before get_params(deep=False)
    config["estimator"].pop("preprocessor")
    config["estimator"].update({f"preprocessor__{k}": v for k, v in fitted.preprocessor.settings().items()})
    config["preprocessing"] = None
    path.write_text(json.dumps(config), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="etm"):
        loaded = TopicModel.load(tmp_path / "model", device="cpu")
    assert not caplog.records
    assert loaded.preprocessor.settings() == fitted.preprocessor.settings()


def test_clone_and_set_params_reach_the_preprocessor() -> None:
    m = TopicModel(3, preprocessor=Preprocessor(min_df=2))
    c = clone(m)
    assert c.preprocessor is not m.preprocessor and c.preprocessor.min_df == 2
    m.set_params(preprocessor__min_df=5)
    assert m.preprocessor.min_df == 5
    with pytest.raises(ValueError, match=r"unknown Preprocessor parameter\(s\) \['min_dff'\]; valid ones are"):
        m.preprocessor.set_params(min_dff=1)


def test_same_seed_same_model(texts) -> None:
    a = TopicModel(4, random_state=11, **SMALL).fit(texts[0][:300])
    b = TopicModel(4, random_state=11, **SMALL).fit(texts[0][:300])
    assert np.array_equal(a.topic_word_, b.topic_word_)


def test_get_params_set_params_clone() -> None:
    m = TopicModel(12, lr=0.002, patience=4)
    params = m.get_params()
    assert params["n_topics"] == 12 and params["lr"] == 0.002 and params["patience"] == 4
    c = clone(m)
    assert c.get_params() == params
    m.set_params(n_topics=7)
    assert m.n_topics == 7 and c.n_topics == 12


def test_init_stores_without_validating() -> None:
    m = TopicModel(n_topics=-5, activation="nope")  # no error until fit
    with pytest.raises(ValueError, match=r"n_topics must be >= 1, got -5"):
        m.fit(["a b c"])


def test_parameter_errors_list_choices() -> None:
    with pytest.raises(ValueError, match=r"activation='swish' is not one of \['elu', 'glu'"):
        TopicModel(activation="swish").fit(["a b"])
    with pytest.raises(ValueError, match=r"optimizer='lbfgs' is not one of \['adam'"):
        TopicModel(optimizer="lbfgs").fit(["a b"])
    with pytest.raises(TypeError, match=r"epochs must be an integer or None, got 2.5"):
        TopicModel(epochs=2.5).fit(["a b"])


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="not fitted yet"):
        TopicModel().transform(["a"])


def test_bare_string_and_one_shot_iterator_are_rejected(fitted: TopicModel) -> None:
    with pytest.raises(TypeError, match=r"expects a list of documents, got a single string"):
        TopicModel().fit("just one string")
    with pytest.raises(TypeError, match=r"one-shot iterator \(generator\)"):
        TopicModel().fit(t for t in ["a", "b"])
    with pytest.raises(TypeError, match=r"expects a list of documents, got a single string"):
        fitted.transform("a string")


def test_vocabulary_mismatch_is_named(fitted: TopicModel) -> None:
    V = len(fitted.vocabulary_)
    with pytest.raises(ValueError, match=rf"corpus has {V + 1} columns, model vocabulary has {V} words"):
        fitted.transform(sp.csr_matrix((3, V + 1)))


def test_more_topics_than_words() -> None:
    X = sp.csr_matrix(np.ones((20, 4)))
    with pytest.raises(ValueError, match=r"n_topics=5 is more than the 4 words of the vocabulary"):
        TopicModel(5, **SMALL).fit(X)


def test_fit_on_sparse_counts_with_vocabulary(small_corpus) -> None:
    X = small_corpus.train.counts[:400]
    m = TopicModel(5, **SMALL).fit(X, vocabulary=small_corpus.vocabulary)
    assert m.vocabulary_ == small_corpus.vocabulary
    assert m.transform(X[:10]).shape == (10, 5)
    with pytest.raises(TypeError, match=r"trained on bags of words, so transform needs a sparse"):
        m.transform(["some text"])


def test_fit_on_prepared_corpus_uses_its_validation(small_corpus) -> None:
    m = TopicModel(5, **SMALL).fit(small_corpus)
    assert "valid_perplexity" in m.history_[0]
    assert m.perplexity(small_corpus) > 1


def test_background_option(small_corpus) -> None:
    m = TopicModel(5, decoder="mixture", **SMALL).fit(small_corpus.train.counts[:400],
                                                      vocabulary=small_corpus.vocabulary)
    assert m.background is True and m.model_.background is not None  # on by default with the mixture
    assert np.allclose(m.topic_word_.sum(1), 1, atol=1e-4) and m.temperature_ == 0.1
    off = TopicModel(5, decoder="mixture", background=False, **SMALL).fit(small_corpus.train.counts[:400],
                                                                          vocabulary=small_corpus.vocabulary)
    assert off.model_.background is None  # the authors' model
    product = TopicModel(5, **SMALL).fit(small_corpus.train.counts[:400], vocabulary=small_corpus.vocabulary)
    assert product.decoder_ == product.model_.decoder == "product" and product.temperature_ == 0.5
    assert product.model_.background is None  # the product decoder learns each word's shift itself


def test_the_encoder_width_follows_the_decoder_unless_given(small_corpus) -> None:
    counts, vocab = small_corpus.train.counts[:200], small_corpus.vocabulary
    small = {k: v for k, v in SMALL.items() if k != "hidden_size"} | {"epochs": 1}
    product = TopicModel(5, **small).fit(counts, vocabulary=vocab)
    mixture = TopicModel(5, decoder="mixture", **small).fit(counts, vocabulary=vocab)
    given = TopicModel(5, hidden_size=48, **small).fit(counts, vocabulary=vocab)
    assert product.hidden_size is None and product.hidden_size_ == product.model_.t_hidden_size == 200
    assert mixture.hidden_size_ == mixture.model_.t_hidden_size == 800
    assert given.hidden_size_ == given.model_.t_hidden_size == 48
