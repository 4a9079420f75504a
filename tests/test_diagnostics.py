"""Topic collapse is detected and explained; the default batch size adapts to the corpus size."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from etm.diagnostics import auto_batch_size, auto_epochs, detect_collapse, near_duplicate_topics


@pytest.mark.parametrize(("documents", "batch"), [(10, 32), (1_800, 90), (11_214, 561), (20_000, 1000),
                                                  (1_000_000, 1000)])
def test_auto_batch_size_gives_about_twenty_steps_an_epoch(documents: int, batch: int) -> None:
    assert auto_batch_size(documents) == batch


@pytest.mark.parametrize(("documents", "epochs"), [(10, 100), (11_214, 100), (40_000, 50), (100_000, 20),
                                                   (1_000_000, 20)])
def test_auto_epochs_gives_about_two_thousand_steps_within_twenty_to_a_hundred_epochs(documents: int,
                                                                                    epochs: int) -> None:
    assert auto_epochs(documents, auto_batch_size(documents)) == epochs


def test_the_estimator_resolves_epochs_and_the_command_line_turns_patience_off() -> None:
    from etm import TopicModel
    from etm.cli import build_parser

    rng = np.random.default_rng(0)
    words = [f"word{chr(97 + i)}" for i in range(26)]
    texts = [" ".join(rng.choice(words, size=12)) for _ in range(64)]
    model = TopicModel(n_topics=3, hidden_size=8, embedding_size=4, epochs=None, device="cpu").fit(texts)
    assert model.epochs_ == 100 and model.n_iter_ <= 100  # 58 training texts, batch 32: 2 steps an epoch
    assert model.n_iter_ < 100  # patience 10 stopped it
    args = build_parser().parse_args(["train", "C", "-o", "M", "--patience", "off"])
    assert args.patience is None


def _beta(top_words: list[list[int]], n_words: int = 200) -> np.ndarray:
    """Topic-word rows whose most probable words are the given ones, in that order."""
    beta = np.full((len(top_words), n_words), 1e-4)
    for k, words in enumerate(top_words):
        beta[k, words] = np.linspace(1.0, 0.5, len(words))
    return beta / beta.sum(1, keepdims=True)


def test_near_duplicates_are_topics_repeating_an_earlier_one() -> None:
    beta = _beta([list(range(25)), list(range(25)), [0, 1, 2, *range(100, 122)], [3, 4, *range(30, 53)]])
    assert near_duplicate_topics(beta) == [1]


def test_collapse_is_reported_with_cause_and_remedy() -> None:
    same = list(range(25))
    collapsed = _beta([same] * 9 + [list(range(25, 50))])
    report = detect_collapse(collapsed, steps=38, batch_size=1000, n_documents=1800, epochs=19)
    assert report is not None and report.duplicates == list(range(1, 9))
    assert report.message.startswith("topic collapse: 8 of 10 topics repeat most top words of another, and topic "
                                     "diversity is 0.20 (this vocabulary allows up to 0.80).")
    assert ("too few optimisation steps (38: 1800 training documents in batches of 1000, 19 epochs). Remedy: a "
            "smaller batch size (e.g. --batch-size 45, batch_size=45)") in report.message
    late = detect_collapse(collapsed, steps=50_000, batch_size=100, n_documents=1800, epochs=2000)
    assert late is not None and "--background 1" in late.message
    distinct = _beta([list(range(25 * k, 25 * k + 25)) for k in range(8)])
    assert detect_collapse(distinct, steps=38, batch_size=1000, n_documents=1800, epochs=19) is None


def test_a_run_with_two_steps_an_epoch_warns_and_the_batch_size_adapts(newsgroup_records, caplog) -> None:
    from etm import Preprocessor, TopicModel

    texts = [r["text"] for r in newsgroup_records if r["split"] == "train"]
    pre = Preprocessor(min_df=5, max_df=0.5, strip_newsgroup=True)
    settings = dict(hidden_size=64, embedding_size=32, device="cpu", preprocessor=pre)
    # the authors' objective collapses
    authors = dict(decoder="mixture", similarity="dot", kl_weight=1.0, encoder_token_drop=0.0)  # (H is set below)
    with caplog.at_level(logging.WARNING, logger="etm.estimator"):
        big = TopicModel(10, epochs=30, batch_size=1000, patience=None, **authors, **settings).fit(texts)
    assert big.batch_size_ == 1000 and big.collapse_ is not None and big.collapse_["steps"] == 30
    assert "topic collapse" in caplog.text and "too few optimisation steps (30: 534 training documents" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="etm.estimator"):  # the default recipe does not, same 30 steps
        recipe = TopicModel(10, epochs=30, batch_size=1000, patience=None, **settings).fit(texts)
    assert recipe.collapse_ is None and "topic collapse" not in caplog.text
    auto = TopicModel(10, epochs=1, **settings).fit(texts)
    assert auto.batch_size == auto.get_params()["batch_size"] is None and auto.batch_size_ == 32
    assert len(auto.history_) == 1
