"""benchmarks/peers.py and its adapters (benchmarks/_peers.py): the parts ``make install`` provides.

topmost, fastopic and tomotopy are benchmark-only packages (``make bench-peers``), so their adapters are run by
the benchmark itself, not here; these tests cover the scoring, the data adapters the topmost models train on,
the decoder likelihood used for ProdLDA / ECRTM, and the script end to end with the gensim LDA (gensim is a
dependency of etm).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import _peers  # noqa: E402
import peers  # noqa: E402
from _baselines import Evaluator, fit_gensim  # noqa: E402

from etm.metrics import completion_loglik  # noqa: E402


@pytest.fixture(scope="module")
def m10(shared_data: Path):
    return peers.read_corpus(shared_data, "m10")


def test_m10_reads_with_completion_halves(m10) -> None:
    first, second = m10.test_halves
    assert m10.train.n_docs == 5847 and len(m10.vocabulary) == 1696
    assert first.shape == second.shape and first.shape[1] == 1696
    both = np.asarray((first + second).sum(axis=1)).ravel()
    assert both.min() >= 2 and (np.asarray(first.sum(axis=1)).ravel() == both // 2).all()


def test_decoder_loglik_of_a_mixture_decoder_equals_completion_loglik(m10) -> None:
    rng = np.random.default_rng(0)
    h2 = m10.test_halves[1][:700]  # more rows than one evaluation batch
    theta = rng.dirichlet(np.ones(5), size=h2.shape[0])
    beta = rng.dirichlet(np.ones(h2.shape[1]), size=5)
    beta_t = torch.as_tensor(beta, dtype=torch.float32)
    got = _peers.decoder_loglik(lambda t: t @ beta_t, theta, h2)
    np.testing.assert_allclose(got, completion_loglik(theta, beta, h2), rtol=1e-5)


def test_decoder_loglik_rejects_a_wrong_shape(m10) -> None:
    h2 = m10.test_halves[1][:10]
    with pytest.raises(ValueError, match=r"decoder gave shape \(10, 3\), expected \(10, 1696\)"):
        _peers.decoder_loglik(lambda t: t[:, :3], np.full((10, 4), 0.25), h2)


def test_topmost_data_yields_every_row_once_per_epoch_as_dense_batches(m10) -> None:
    counts = m10.train.counts[:450]
    data = _peers.TopmostData(counts, m10.vocabulary, batch_size=200)
    torch.manual_seed(0)
    batches = list(data.train_dataloader)
    assert [b.shape for b in batches] == [(200, 1696), (200, 1696), (50, 1696)]
    assert all(b.dtype == torch.float32 for b in batches)
    seen = torch.cat(batches)
    # the same rows, shuffled: compare sorted row sums and the total
    np.testing.assert_allclose(sorted(seen.sum(1).tolist()), sorted(np.asarray(counts.sum(axis=1)).ravel()))
    assert data.train_data.shape == (450, 1696) and len(data.train_dataloader.dataset) == 450
    np.testing.assert_array_equal(data.train_data[torch.tensor([3, 1])].numpy(), counts[[3, 1]].toarray())


def test_batched_theta_runs_in_batches_and_keeps_rows(m10) -> None:
    h1 = m10.test_halves[0][:1100]
    theta = _peers.batched_theta(lambda x: torch.softmax(x[:, :4], dim=1), h1)
    assert theta.shape == (1100, 4) and theta.dtype == np.float64
    np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=1e-6)


def test_bow_texts_lists_distinct_words_most_frequent_first() -> None:
    counts = sp.csr_matrix(np.array([[1, 3, 0, 1], [0, 0, 2, 0]]))
    assert _peers.bow_texts(counts, ["a", "b", "c", "d"]) == ["b a d", "c"]


def test_fixed_bow_refuses_a_different_number_of_documents() -> None:
    bow = _peers.FixedBow(sp.csr_matrix(np.ones((3, 2))), ["x", "y"])
    assert bow.preprocess(["", "", ""])["vocab"] == ["x", "y"]
    with pytest.raises(ValueError, match="2 documents given, the bag of words has 3 rows"):
        bow.preprocess(["", ""])


def test_score_of_gensim_lda_on_a_slice(m10) -> None:
    ev = Evaluator(m10)
    fit = _peers.from_fitted(fit_gensim(m10, ev, passes=1, n_topics=8, seed=3))
    row = _peers.score(ev, fit)
    assert np.shape(row["top10"]) == (8, 10) and len(row["per_topic_coherence"]) == 8
    assert -1.0 <= row["coherence"] <= 1.0 and 0.0 < row["diversity"] <= 1.0
    assert row["quality"] == pytest.approx(row["coherence"] * row["diversity"])
    assert row["perplexity"] == row["perplexity_mixture"] and 1 < row["perplexity"] < len(m10.vocabulary)
    assert row["perplexity_from"] == "theta @ beta"


def test_script_runs_gensim_rows_resumes_and_prints_tables(shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "rows.json"
    argv = ["--data", str(shared_data), "--corpora", "m10", "--topics", "5", "--seeds", "1,2", "--only",
            "gensim", "--gensim-passes", "1", "--json-out", str(out)]
    assert peers.main(argv) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["model"], r["k"], r["seed"]) for r in rows] == [("LDA (gensim)", 5, 1), ("LDA (gensim)", 5, 2)]
    assert rows[0]["quality"] != rows[1]["quality"]  # the seed reaches the model
    capsys.readouterr()
    assert peers.main(argv) == 0  # every row is already there: nothing is retrained
    assert "already in" in capsys.readouterr().out
    assert peers.main(["--table-only", "--json-out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| 5 | LDA (gensim) | 2 |" in table and " ± " in table


def test_script_rejects_unknown_models() -> None:
    with pytest.raises(SystemExit):
        peers.parse_args(["--only", "bertopic"])


def test_etm_params_are_parsed_as_json_and_label_the_rows() -> None:
    args = peers.parse_args(["--etm-only", "--etm-param", "ecr_weight=10", "--etm-param", "activation=tanh"])
    assert args.models == ["etm"]
    assert args.etm_params == {"ecr_weight": 10, "activation": "tanh"}
    assert args.etm_label == 'etm {"activation": "tanh", "ecr_weight": 10}'


def test_heldout_coherence_scores_stored_top_words_over_the_test_documents(m10, shared_data, tmp_path,
                                                                         capsys) -> None:
    import heldout_coherence

    from etm.metrics import topic_coherence

    vocab = list(m10.vocabulary)
    by_frequency = np.argsort(-np.asarray(m10.train.counts.sum(axis=0)).ravel(), kind="stable")
    frequent = [[vocab[i] for i in by_frequency[10 * t:10 * t + 10]] for t in range(3)]
    rare = [[vocab[i] for i in by_frequency[-10 * t - 10:len(vocab) - 10 * t]] for t in range(3)]
    rows = [{"corpus": "m10", "model": "frequent", "k": 3, "seed": 1, "date": "2026-01-01", "diversity": 1.0,
             "top10": frequent},
            {"corpus": "m10", "model": "rare", "k": 3, "seed": 1, "date": "2026-01-01", "diversity": 1.0,
             "top10": frequent},
            {"corpus": "m10", "model": "rare", "k": 3, "seed": 1, "date": "2026-01-02", "diversity": 0.5,
             "top10": rare},  # the later row of the same (model, K, seed) wins
            {"corpus": "m10", "model": "no words", "k": 3, "seed": 1, "date": "2026-01-01", "diversity": 1.0},
            {"corpus": "20ng", "model": "other corpus", "k": 3, "seed": 1, "diversity": 1.0, "top10": frequent}]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"rows": rows}))
    assert heldout_coherence.main([str(path), "--corpus", "m10", "--data", str(shared_data)]) == 0
    scored = heldout_coherence.score(heldout_coherence.load_rows([path], "m10"), vocab, m10.train.counts,
                                     sp.csr_matrix(m10.test_halves[0] + m10.test_halves[1]))
    assert [(s["model"], s["diversity"]) for s in scored] == [("frequent", 1.0), ("rare", 0.5)]
    index = {w: i for i, w in enumerate(vocab)}
    heldout = topic_coherence(np.array([[index[w] for w in t] for t in frequent]),
                              m10.test_halves[0] + m10.test_halves[1])
    assert scored[0]["heldout_coherence"] == pytest.approx(heldout)
    assert scored[1]["heldout_quality"] == pytest.approx(0.5 * scored[1]["heldout_coherence"])
    assert scored[1]["heldout_coherence"] < scored[0]["heldout_coherence"]  # rare words rarely share a title
    printed = capsys.readouterr().out
    assert "| 3 | frequent | 1 |" in printed and "other corpus" not in printed and "no words" not in printed


def test_heldout_coherence_subset_agreement_ranks_rows_against_the_whole_reference(m10, shared_data, tmp_path,
                                                                                   capsys) -> None:
    """--subset: each estimate's quality over random subsets is ranked against the whole reference's quality."""
    import heldout_coherence

    from etm.metrics import topic_coherence

    vocab = list(m10.vocabulary)
    by_frequency = np.argsort(-np.asarray(m10.train.counts.sum(axis=0)).ravel(), kind="stable")
    rows = [{"corpus": "m10", "model": f"band {b}", "k": 3, "seed": 1, "diversity": 1.0,
             "top10": [[vocab[i] for i in by_frequency[30 * b + 10 * t:30 * b + 10 * t + 10]] for t in range(3)]}
            for b in range(4)]  # four sets of topics, from the most frequent words down
    path = tmp_path / "rows.json"
    path.write_text(json.dumps({"rows": rows}))
    heldout = sp.csr_matrix(m10.test_halves[0] + m10.test_halves[1])
    result = heldout_coherence.subset_agreement(heldout_coherence.load_rows([path], "m10"), vocab, heldout,
                                                size=400, draws=2, pseudo_counts=[0.0, 0.1])
    index = {w: i for i, w in enumerate(vocab)}
    whole = [topic_coherence(np.array([[index[w] for w in t] for t in r["top10"]]), heldout) for r in rows]
    assert result[0.0]["truth"] == pytest.approx(whole)  # diversity 1: quality is coherence
    for c in (0.0, 0.1):
        assert len(result[c]["tau"]) == 2 and all(-1.0 <= t <= 1.0 for t in result[c]["tau"])
        assert result[c]["row_quality"].shape == (4,)
    assert not np.allclose(result[0.0]["row_quality"], result[0.1]["row_quality"])
    # --pseudo-count scores the main table's two coherence columns with the estimate
    train = sp.csr_matrix(m10.train.counts)
    scored = heldout_coherence.score(heldout_coherence.load_rows([path], "m10"), vocab, train, heldout, 0.1)
    top = np.array([[index[w] for w in t] for t in rows[0]["top10"]])
    assert scored[0]["coherence"] == pytest.approx(topic_coherence(top, train, pseudo_count=0.1))
    assert scored[0]["heldout_coherence"] == pytest.approx(topic_coherence(top, heldout, pseudo_count=0.1))
    with pytest.raises(ValueError, match="--subset must be between 2 and the"):
        heldout_coherence.subset_agreement(rows, vocab, heldout, size=10 ** 6, draws=1, pseudo_counts=[0.0])
    assert heldout_coherence.main([str(path), "--corpus", "m10", "--data", str(shared_data), "--subset", "300",
                                   "--draws", "2", "--pseudo-counts", "0,0.1"]) == 0
    printed = capsys.readouterr().out
    assert "Ranking the rows by quality over 300 held-out documents" in printed
    assert "authors' NPMI" in printed and "pseudo_count=0.1" in printed
